"""The text of a corpus, split by split, as a stream of pieces: never the whole corpus in memory.

A source yields ``(text, ends_document)`` pieces of whole lines. How it splits:
- ``characters``: one long text (tiny-shakespeare, any single text file) is cut by character
  position exactly as fmlab always has: the first ``1 - val - test`` of its characters train, then
  ``val``, then ``test`` (nanoGPT's 90/10). Its tokens hold no end-of-text id.
- ``own``: the corpus's own split files (WikiText's train/valid/test), each one long text.
- ``documents``: many documents (a folder or glob of *.txt files, JSON Lines, Parquet, a Hugging
  Face dataset) go to a split by their index i: with u = frac((i + 1) * 0.618…) (a golden-ratio
  sequence: deterministic, no hash, and spread so evenly that even 10 documents give one to a 0.1
  share), u < 1 - val - test trains, u < 1 - test validates, the rest test.
"""

from collections.abc import Callable, Iterator
from pathlib import Path

from fmlab.errors import FmlabError

GOLDEN = 0.6180339887498949


class Source:
    """Pieces per split; ``files`` are what the store's fingerprint covers."""

    split_rule: str  # characters, own or documents
    multi_document: bool = False
    local: bool = True  # False: files in the Hugging Face cache (the store goes to fmlab's)

    def __init__(self, name: str, files: list[Path]) -> None:
        self.name, self.files = name, files

    def splits(self) -> list[str]:
        raise NotImplementedError

    def pieces(self, split: str) -> Iterator[tuple[str, bool]]:
        raise NotImplementedError


class OneText(Source):
    """One long text, cut by character position (its length is found by a first reading)."""

    split_rule = "characters"

    def __init__(self, name, path: Path, read: Callable, val: float, test: float) -> None:
        super().__init__(name, [path])
        self.read, self.val, self.test = read, val, test
        self._ends: dict[str, int] | None = None

    def ends(self) -> dict[str, int]:
        """Each split's end, in characters; a split that should hold text but has none is refused
        (the same messages as TextDataModule._split)."""
        if self._ends is None:
            n = sum(len(piece) for piece in self.read(self.files[0]))
            if not n:
                raise FmlabError(
                    f"data.corpus={self.name!r} is empty ({self.files[0]} holds no text): there "
                    "is nothing to train on. Point data.corpus at a text file or a folder of *.txt "
                    "files."
                )
            train, val = int(n * (1 - self.val - self.test)), int(n * (1 - self.test))
            self._ends = {"train": train, "val": val, "test": n}
            shares = {"train": 1 - self.val - self.test, "val": self.val, "test": self.test}
            starts = {"train": 0, "val": train, "test": val}
            for split, share in shares.items():
                if share > 0 and self._ends[split] == starts[split]:
                    fix = "lower data.val_fraction and data.test_fraction"
                    raise FmlabError(
                        f"the {split} split of data.corpus={self.name!r} is empty: a share of "
                        f"{share:g} of its {n:,} characters is less than one. Use a larger "
                        f"corpus, or {fix if split == 'train' else f'raise data.{split}_fraction'}."
                    )
        return self._ends

    def splits(self) -> list[str]:
        ends, start = self.ends(), 0
        out = []
        for split in ("train", "val", "test"):
            if ends[split] > start:
                out.append(split)
            start = ends[split]
        return out

    def pieces(self, split: str) -> Iterator[tuple[str, bool]]:
        ends = self.ends()
        start = {"train": 0, "val": ends["train"], "test": ends["val"]}[split]
        end, pos = ends[split], 0
        for piece in self.read(self.files[0]):
            lo, hi = max(start - pos, 0), min(end - pos, len(piece))
            if lo < hi:
                yield piece[lo:hi], False
            pos += len(piece)
            if pos >= end:
                return


class OwnSplits(Source):
    """The corpus's own split files, each one long text."""

    split_rule = "own"

    def __init__(self, name: str, files: dict[str, Path], read: Callable) -> None:
        super().__init__(name, list(files.values()))
        self.by_split, self.read = files, read
        for split, path in files.items():
            if path.stat().st_size == 0:
                raise FmlabError(
                    f"data.corpus file {path} (the {split} split of {name!r}) is empty. Restore "
                    "the file (delete the folder to download it again)."
                )

    def splits(self) -> list[str]:
        return list(self.by_split)

    def pieces(self, split: str) -> Iterator[tuple[str, bool]]:
        return ((piece, False) for piece in self.read(self.by_split[split]))


class Documents(Source):
    """Documents, each an iterable of pieces: their own splits (``own``: split -> documents
    function), or every one sent to a split by its index (``all``: a documents function)."""

    multi_document = True

    def __init__(self, name, files, val: float, test: float, all=None, own=None) -> None:
        super().__init__(name, files)
        self.val, self.test, self.all, self.own = val, test, all, own
        self.split_rule = "own" if own else "documents"

    def splits(self) -> list[str]:
        if self.own:
            return list(self.own)
        shares = {"train": 1 - self.val - self.test, "val": self.val, "test": self.test}
        return [split for split, share in shares.items() if share > 0]

    def split_of(self, i: int) -> str:
        u = ((i + 1) * GOLDEN) % 1.0
        return "train" if u < 1 - self.val - self.test else "val" if u < 1 - self.test else "test"

    def pieces(self, split: str) -> Iterator[tuple[str, bool]]:
        if self.own:
            documents = self.own[split]()
        else:
            documents = (d for i, d in enumerate(self.all()) if self.split_of(i) == split)
        for document in documents:
            last = None
            for piece in document:
                if last:
                    yield last, False
                last = piece
            if last:  # an empty document is left out: it would be a lone end-of-text id
                yield last, True

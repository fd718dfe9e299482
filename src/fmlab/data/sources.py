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

import glob
import gzip
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from fmlab.data.corpora import CORPORA, corpus_files, fetch, read_pieces
from fmlab.data.hf_sources import hf_splits, is_saved_dataset
from fmlab.errors import FmlabError

GOLDEN = 0.6180339887498949
PIECE_BYTES = 1 << 21  # 2 MB of a text file at a time


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


def open_source(spec) -> Source:
    """The source of ``spec.corpus`` (a PrepareSpec): a named corpus or a path, glob or dataset."""

    def read(path: Path) -> Iterator[str]:
        return read_pieces(path, "data.corpus", spec.encoding, spec.encoding_errors, PIECE_BYTES)

    data_dir, corpus = Path(spec.data_dir).expanduser(), spec.corpus
    fractions = (spec.val_fraction, spec.test_fraction)
    if corpus == "openwebtext":
        return _openwebtext(spec, data_dir / "openwebtext", fractions)
    if corpus in CORPORA:
        fetch(corpus, data_dir, spec.download)
        files = corpus_files(corpus, data_dir)
        if "all" in files:
            return OneText(corpus, files["all"], read, *fractions)
        return OwnSplits(corpus, files, read)
    path = Path(corpus).expanduser()
    if is_saved_dataset(path) or ("/" in corpus and not path.exists() and not _is_glob(corpus)):
        return _hf(corpus, spec, fractions)
    if path.is_file() and _kind(path) == "txt":
        return OneText(corpus, path, read, *fractions)
    files = _files(corpus, path)
    kind = _kind(files[0])
    documents = {"txt": lambda: (read(p) for p in files), "jsonl": lambda: _jsonl(files, spec)}
    documents["parquet"] = lambda: _parquet(files, spec.text_field)
    return Documents(corpus, files, *fractions, all=documents[kind])


def fingerprint(files: list[Path]) -> str:
    """What a store's key holds of its source, cheap for a corpus of many GB: every file's path,
    size and modification time, and its first and last MB (an edit or a copy over it changes
    these; a same-size in-place edit of the middle that keeps the mtime would not)."""
    digest = hashlib.sha256()
    for path in files:
        stat = path.stat()
        digest.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|".encode())
        with open(path, "rb") as f:
            digest.update(f.read(1 << 20))
            f.seek(max(stat.st_size - (1 << 20), 0))
            digest.update(f.read(1 << 20))
    return digest.hexdigest()


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz", ".ndjson")):
        return "jsonl"
    return "parquet" if name.endswith(".parquet") else "txt"


def _is_glob(corpus: str) -> bool:
    return any(c in corpus for c in "*?[")


def _files(corpus: str, path: Path) -> list[Path]:
    """The files of a folder (its Parquet, JSON Lines or else *.txt files) or glob, sorted."""
    if _is_glob(corpus):
        files = [Path(p) for p in glob.glob(str(path), recursive=True)]
    elif path.is_file():
        files = [path]
    elif path.is_dir():
        every = [p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")]
        kinds = {_kind(p) for p in every if p.suffix != ".txt" or _kind(p) == "txt"}
        kind = next((k for k in ("parquet", "jsonl") if k in kinds), "txt")
        files = [p for p in every if _kind(p) == kind and (kind != "txt" or p.suffix == ".txt")]
    else:
        files = []
    files = sorted(p for p in files if p.is_file())
    if not files:
        names = ", ".join([*CORPORA, "openwebtext"])
        raise FmlabError(
            f"data.corpus={corpus!r} is neither a named corpus ({names}) "
            "nor an existing text file, folder or glob of *.txt, *.jsonl or *.parquet files, nor a "
            "Hugging Face dataset. Give one of those names or the path of your text."
        )
    kinds = {_kind(p) for p in files}
    if len(kinds) > 1:
        raise FmlabError(
            f"data.corpus={corpus!r} matches files of {len(kinds)} kinds "
            f"({', '.join(sorted(kinds))}). Narrow the glob (e.g. '*.jsonl') so that every file "
            "is of one kind."
        )
    return files


def _jsonl(files: list[Path], spec) -> Iterator[Iterable[str]]:
    for path in files:
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rt", encoding=spec.encoding, errors=spec.encoding_errors) as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                record = None
                try:
                    record = json.loads(line)
                    text = record[spec.text_field]
                except (ValueError, KeyError, TypeError):
                    keys = ", ".join(record) if isinstance(record, dict) else "none"
                    raise FmlabError(
                        f"data.corpus file {path}, line {number}, is not a JSON object with a text "
                        f"field {spec.text_field!r} (its keys: {keys}). Set data.text_field to the "
                        "key that holds the text, or mend the line."
                    ) from None
                yield [text] if isinstance(text, str) else []


def _parquet(files: list[Path], field: str) -> Iterator[Iterable[str]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise FmlabError(
            "data.corpus names Parquet files, which need pyarrow: pip install pyarrow (or "
            "pip install fmlab[hf])."
        ) from None
    for path in files:
        table = pq.ParquetFile(path)
        if field not in table.schema_arrow.names:
            raise FmlabError(
                f"data.corpus file {path} has no column {field!r} (its columns: "
                f"{', '.join(table.schema_arrow.names)}). Set data.text_field to the column that "
                "holds the text."
            )
        for batch in table.iter_batches(batch_size=1024, columns=[field]):  # a row group at most
            for text in batch.column(0).to_pylist():
                yield [text] if text else []


def _hf(corpus: str, spec, fractions, name: str | None = None) -> Source:
    """A Hugging Face dataset: its own splits when it has more than a training split."""
    files, splits = hf_splits(corpus, spec)
    if set(splits) == {"train"}:
        source = Documents(name or corpus, files, *fractions, all=splits["train"])
    else:
        source = Documents(name or corpus, files, *fractions, own=splits)
    source.local = is_saved_dataset(Path(corpus).expanduser())
    return source


def _openwebtext(spec, folder: Path, fractions) -> Source:
    """nanoGPT's corpus: a ``save_to_disk`` folder or Parquet files in <data_dir>/openwebtext/,
    else Skylion007/openwebtext from the Hugging Face hub (through ``datasets``)."""
    parquet = sorted(folder.rglob("*.parquet")) if folder.is_dir() else []
    if is_saved_dataset(folder):
        return _hf(str(folder), spec, fractions, "openwebtext")
    if parquet:
        documents = lambda: _parquet(parquet, spec.text_field)  # noqa: E731
        return Documents("openwebtext", parquet, *fractions, all=documents)
    if spec.download:
        return _hf("Skylion007/openwebtext", spec, fractions, "openwebtext")
    raise FmlabError(
        f"corpus 'openwebtext' is missing ({folder} holds neither a datasets save_to_disk folder "
        "nor Parquet files) and data.download=false. On a machine with internet, run "
        "datasets.load_dataset('Skylion007/openwebtext', split='train').save_to_disk('"
        f"{folder}'), or download the Parquet files of "
        f"https://huggingface.co/datasets/Skylion007/openwebtext into {folder}/; or point "
        "FMLAB_DATA_DIR (or paths.data_dir=...) at the folder that holds openwebtext/."
    )

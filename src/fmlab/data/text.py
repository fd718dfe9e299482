"""Text corpora for language models: tokenised once into a cached integer array, served as windows.

Training batches are ``batch_size`` random windows of ``block_size + 1`` tokens, cut from the
training split in one indexing op (nanoGPT's ``get_batch``). Validation and test cover their split
deterministically with non-overlapping windows: every position is scored once, with the same mix
of context lengths (0 … block_size - 1) as nanoGPT's random windows, so the mean loss has the same
meaning as nanoGPT's ``estimate_loss`` without its sampling noise.
"""

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Annotated, Literal

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from fmlab import cache
from fmlab.constraints import AT_LEAST_ONE, FRACTION, Range
from fmlab.data.batches import BatchIndices
from fmlab.data.corpora import CORPORA, corpus_files, fetch, read_text
from fmlab.data.tokenizer import BPETokenizer, CharTokenizer, tokenizer_from_dict
from fmlab.errors import FmlabError

log = logging.getLogger(__name__)

CACHE_VERSION = 2  # bump when the cached format or the tokenisation changes (2: manifest.json)
TINY_SHAKESPEARE_MD5 = "6fb458f1232090904fb40fe944165e91"


class RandomWindows(IterableDataset):
    """Endless batches of random windows (B, block_size + 1), one gather each."""

    def __init__(self, tokens: torch.Tensor, block_size: int, batch_size: int, seed: int) -> None:
        self.tokens, self.block_size, self.batch_size, self.seed = (
            tokens,
            block_size,
            batch_size,
            seed,
        )
        self.offsets = torch.arange(block_size + 1)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed)
        high = len(self.tokens) - self.block_size  # a start s reads tokens s … s + block_size
        while True:
            starts = torch.randint(high, (self.batch_size, 1), generator=g)
            yield self.tokens[starts + self.offsets]  # (B, block_size + 1)


class Rows(Dataset):
    """Rows of a tensor, a whole batch of indices at a time."""

    def __init__(self, rows: torch.Tensor) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: torch.Tensor) -> torch.Tensor:
        return self.rows[index]


class TextDataModule(L.LightningDataModule):
    """A corpus (``tiny_shakespeare``, ``wikitext2``, ``wikitext103`` or a path), tokenised by
    ``char`` or byte-level ``bpe``. Corpora without official splits are cut by character position:
    the first part trains, then ``val_fraction``, then ``test_fraction`` (nanoGPT: 0.9 / 0.1)."""

    def __init__(
        self,
        data_dir: str = "data",
        corpus: str = "tiny_shakespeare",
        tokenizer: str = "char",
        bpe_vocab_size: Annotated[int, Range(ge=256)] = 4096,  # the 256 bytes, then merges
        block_size: Annotated[int, AT_LEAST_ONE] = 256,
        batch_size: Annotated[int, AT_LEAST_ONE] = 64,
        eval_batch_size: Annotated[int, AT_LEAST_ONE] = 64,
        val_fraction: Annotated[float, FRACTION] = 0.1,
        test_fraction: Annotated[float, FRACTION] = 0.0,
        seed: int = 0,
        cache_dir: str | None = None,
        download: bool = True,
        encoding: str = "utf-8",
        encoding_errors: Literal["strict", "replace", "ignore"] = "strict",
    ) -> None:
        super().__init__()
        if tokenizer not in ("char", "bpe"):
            raise FmlabError(f"data.tokenizer={tokenizer!r}: use char or bpe.")
        self.data_dir, self.corpus, self.tokenizer_kind = (
            Path(data_dir).expanduser(),
            corpus,
            tokenizer,
        )
        self.bpe_vocab_size, self.block_size = bpe_vocab_size, block_size
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.val_fraction, self.test_fraction, self.seed = val_fraction, test_fraction, seed
        self.cache_dir, self.download = cache_dir, download
        self.encoding, self.encoding_errors = encoding, encoding_errors
        self.tokenizer = None
        self._given_tokenizer: dict | None = None  # a checkpoint's, to encode other text with
        self.tokens: dict[str, torch.Tensor] = {}  # split -> (n,) int32
        self.tokens_per_char: dict[str, float] = {}
        self.record: dict = {}

    # ---- what the rest of fmlab reads -------------------------------------------------------
    @property
    def net_args(self) -> dict:
        self._load()
        return {"vocab_size": self.tokenizer.vocab_size, "block_size": self.block_size}

    @property
    def has_val(self) -> bool:
        self._load()
        return "val" in self.tokens

    @property
    def has_test(self) -> bool:
        self._load()
        return "test" in self.tokens

    def state_dict(self) -> dict:
        """Saved inside every checkpoint: sampling and evaluation reuse this exact tokenizer."""
        return {"tokenizer": self.tokenizer.to_dict()} if self.tokenizer else {}

    def load_state_dict(self, state: dict) -> None:
        """Before the data is loaded (fmlab-eval): encode whatever corpus is configured with the
        checkpoint's tokenizer. After (a resumed fit): refuse data whose tokenizer differs."""
        if self.tokenizer is None and state.get("tokenizer"):
            self._given_tokenizer = state["tokenizer"]
            return
        self._load()
        if state.get("tokenizer") and self.tokenizer.to_dict() != state["tokenizer"]:
            raise FmlabError(
                f"the checkpoint was trained with a different tokenizer than corpus "
                f"{self.corpus!r} with data.tokenizer={self.tokenizer_kind} builds now (the corpus "
                "or the tokenizer settings changed); use the data it was trained on."
            )

    # ---- Lightning hooks ----------------------------------------------------------------
    def prepare_data(self) -> None:
        fetch(self.corpus, self.data_dir, self.download)

    def setup(self, stage: str | None = None) -> None:
        self._load()
        if self.trainer is not None:
            path = Path(self.trainer.default_root_dir) / "tokenizer.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(self.tokenizer.to_dict()))

    def train_dataloader(self) -> DataLoader:
        windows = RandomWindows(self.tokens["train"], self.block_size, self.batch_size, self.seed)
        return DataLoader(windows, batch_size=None)

    def val_dataloader(self) -> DataLoader | list:
        return self._eval_loader("val") if "val" in self.tokens else []

    def test_dataloader(self) -> DataLoader:
        if "test" not in self.tokens:
            raise FmlabError(
                f"corpus {self.corpus!r} has no test split here. Set test=false (the recipes on "
                "corpora without one do), or carve one with data.test_fraction=0.1."
            )
        return self._eval_loader("test")

    def on_after_batch_transfer(self, batch: torch.Tensor, dataloader_idx: int):
        batch = batch.long()  # (B, block_size + 1), stored as int32
        return batch[:, :-1], batch[:, 1:]  # inputs, next-token targets

    # ---- loading --------------------------------------------------------------------------
    def _eval_loader(self, split: str) -> DataLoader:
        tokens = self.tokens[split]
        n = (len(tokens) - 1) // self.block_size
        if n < 1:
            raise FmlabError(
                f"the {split} split holds {len(tokens)} tokens, fewer than data.block_size + 1 = "
                f"{self.block_size + 1}. Use a larger corpus or fraction, or a smaller block_size."
            )
        # Non-overlapping windows of block_size + 1 tokens that share their boundary token.
        windows = tokens[: n * self.block_size + 1].unfold(0, self.block_size + 1, self.block_size)
        log.info(
            "%s: %d non-overlapping windows of %d tokens score all %d positions of the split "
            "once (deterministic; nanoGPT estimates this mean from eval_iters random batches)",
            split,
            n,
            self.block_size,
            n * self.block_size,
        )
        sampler = BatchIndices(n, self.eval_batch_size, shuffle=False)
        return DataLoader(Rows(windows), batch_size=None, sampler=sampler)

    def _load(self) -> None:
        if self.tokenizer is not None:
            return
        fetch(self.corpus, self.data_dir, self.download)
        files = corpus_files(self.corpus, self.data_dir)
        texts = {
            name: read_text(path, "data.corpus", self.encoding, self.encoding_errors)
            for name, path in files.items()
        }
        splits = self._split(texts, files)  # refuses an empty corpus or split by name
        digest = hashlib.sha256()
        for name in sorted(texts):
            digest.update(f"{name}:{hashlib.sha256(texts[name].encode()).hexdigest()};".encode())
        corpus_hash = digest.hexdigest()
        settings = {
            "version": CACHE_VERSION,
            "corpus_sha256": corpus_hash,
            "tokenizer": self.tokenizer_kind,
            "bpe_vocab_size": self.bpe_vocab_size if self.tokenizer_kind == "bpe" else None,
            "val_fraction": self.val_fraction,
            "test_fraction": self.test_fraction,
        }
        if self._given_tokenizer is not None:
            settings["given_tokenizer_sha256"] = hashlib.sha256(
                json.dumps(self._given_tokenizer, sort_keys=True).encode()
            ).hexdigest()
        key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
        folder = self._cache_folder(files) / key
        meta = cache.ensure(
            folder,
            lambda tmp: self._tokenize(splits, tmp, settings),
            f"token cache of {self.corpus}",
        )
        self.tokenizer = tokenizer_from_dict(json.loads((folder / "tokenizer.json").read_text()))
        for split in meta["splits"]:
            array = np.load(folder / f"{split}.npy")
            self.tokens[split] = torch.from_numpy(array.astype(np.int32))
            self.tokens_per_char[split] = len(array) / meta["chars"][split]
        self.record = self._record(files, texts, corpus_hash, meta, folder)

    def _split(self, texts: dict[str, str], files: dict[str, Path]) -> dict[str, str]:
        """Train, val and test text: the corpus's own split files, or cut by the fractions. A
        split that is empty but should not be is refused, naming the file or the fraction."""
        if "train" in texts:  # the corpus's own split
            for name, text in texts.items():
                if not text:
                    raise FmlabError(
                        f"data.corpus file {files[name]} (the {name} split of {self.corpus!r}) is "
                        "empty. Restore the file (delete the folder to download it again)."
                    )
            return texts
        text = "".join(texts[k] for k in sorted(texts, key=lambda k: int(k.partition(":")[2] or 0)))
        if not text:
            where = ", ".join(str(p) for p in files.values())
            raise FmlabError(
                f"data.corpus={self.corpus!r} is empty ({where} holds no text): there is nothing "
                "to train on. Point data.corpus at a text file or a folder of *.txt files."
            )
        n = len(text)
        train_end = int(n * (1 - self.val_fraction - self.test_fraction))
        val_end = int(n * (1 - self.test_fraction))
        splits = {"train": text[:train_end], "val": text[train_end:val_end], "test": text[val_end:]}
        shares = {"train": 1 - self.val_fraction - self.test_fraction, "val": self.val_fraction}
        for name, share in {**shares, "test": self.test_fraction}.items():
            if share > 0 and not splits[name]:
                fix = "lower data.val_fraction and data.test_fraction"
                raise FmlabError(
                    f"the {name} split of data.corpus={self.corpus!r} is empty: a share of "
                    f"{share:g} of its {n:,} characters is less than one. Use a larger corpus, "
                    f"or {fix if name == 'train' else f'raise data.{name}_fraction'}."
                )
        return {k: v for k, v in splits.items() if v}

    def _tokenize(self, splits: dict[str, str], folder: Path, settings: dict) -> dict:
        """Writes the token cache into ``folder``; returns what its manifest records."""
        log.info("Tokenising %s (%s) into %s", self.corpus, self.tokenizer_kind, folder)
        if self._given_tokenizer is not None:
            tokenizer = tokenizer_from_dict(self._given_tokenizer)
        elif self.tokenizer_kind == "char":
            tokenizer = CharTokenizer.train(splits["train"])
        else:
            tokenizer = BPETokenizer.train(splits["train"], self.bpe_vocab_size)
        dtype = np.uint16 if tokenizer.vocab_size <= 2**16 else np.int32
        for split, text in splits.items():
            np.save(folder / f"{split}.npy", tokenizer.encode(text).astype(dtype))
        (folder / "tokenizer.json").write_text(json.dumps(tokenizer.to_dict()))
        return {**settings, "splits": list(splits), "chars": {k: len(v) for k, v in splits.items()}}

    def _cache_folder(self, files: dict[str, Path]) -> Path:
        """Beside the corpus, or ``cache_dir``; a read-only data folder falls back to the user's
        cache folder, saying so."""
        wanted = Path(self.cache_dir) if self.cache_dir else next(iter(files.values())).parent
        wanted = wanted / ".fmlab-cache" if not self.cache_dir else wanted
        try:
            wanted.mkdir(parents=True, exist_ok=True)
            probe = wanted / f".probe.{os.getpid()}"
            probe.touch()
            probe.unlink()
            return wanted
        except OSError as err:
            home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
            fallback = home / "fmlab" / "tokens"
            log.warning(
                "Cannot write the token cache to %s (%s); using %s instead. Set data.cache_dir "
                "to choose the folder.",
                wanted,
                err,
                fallback,
            )
            fallback.mkdir(parents=True, exist_ok=True)
            return fallback

    def _record(self, files, texts, corpus_hash: str, meta: dict, folder: Path) -> dict:
        official = self.corpus in CORPORA
        if self.corpus == "tiny_shakespeare":
            official = hashlib.md5(texts["all"].encode()).hexdigest() == TINY_SHAKESPEARE_MD5
        return {
            "name": self.corpus,
            "files": {k: str(p.resolve()) for k, p in files.items()},
            "official": official,
            "fingerprint": corpus_hash[:16],
            "encoding": self.encoding,
            "encoding_errors": self.encoding_errors,
            "tokenizer": self.tokenizer_kind,
            "vocab_size": self.tokenizer.vocab_size,
            "tokens": {k: len(v) for k, v in self.tokens.items()},
            "chars": meta["chars"],
            "cache": str(folder),
        }

"""A prepared corpus on disk, read through memory maps: the token ids of each split, never loaded
whole, so corpus size is a matter of disk, not RAM.

Two layouts are read as a store:
- fmlab's own (``fmlab-prepare`` writes it): shards ``{split}-{i:06d}.bin`` of raw little-endian
  ids (uint16 when the vocabulary fits, else uint32) and ``manifest.json``, written last, which
  names the shards, their sizes, the dtype and the tokenizer.
- nanoGPT's: ``train.bin`` / ``val.bin`` of flat uint16, with ``meta.pkl`` (its character
  vocabulary) or without (GPT-2's BPE, as its openwebtext/prepare.py writes), so a lab's existing
  prepared data trains as it is.

A split is one sequence of tokens, its shards concatenated in order: a window may span two shards.
Every shard's size is checked against the manifest when the store opens (cheap: no hashing), so a
truncated shard is refused by name instead of being trained on.
"""

import json
import pickle
from pathlib import Path

import numpy as np

from fmlab.data.tokenizers import CharTokenizer, tokenizer_from_dict
from fmlab.errors import FmlabError

MANIFEST = "manifest.json"
FORMAT = "fmlab-token-store"
VERSION = 1
GPT2_EOT = 50256  # nanoGPT's openwebtext/prepare.py appends it after every document


class Tokens:
    """One split: the concatenation of its memory-mapped shards, indexed by global position."""

    def __init__(self, shards: list) -> None:  # Shard or array: anything with len and [index]
        self.shards = [s for s in shards if len(s)]
        self.ends = np.cumsum([len(s) for s in self.shards], dtype=np.int64)  # (n_shards,)

    def __len__(self) -> int:
        return int(self.ends[-1]) if len(self.ends) else 0

    def __getitem__(self, index) -> np.ndarray:
        """The ids at ``index`` (an int array of any shape, or a slice), as int64."""
        if isinstance(index, slice):
            index = np.arange(*index.indices(len(self)))
        index = np.asarray(index, dtype=np.int64)
        if len(self.shards) == 1:  # the common case: one gather straight from the map
            return self.shards[0][index].astype(np.int64)
        shard = np.searchsorted(self.ends, index, side="right")
        starts = np.concatenate(([0], self.ends[:-1]))
        out = np.empty(index.shape, dtype=np.int64)
        for i in np.unique(shard):
            where = shard == i
            out[where] = self.shards[i][index[where] - starts[i]]
        return out


class TokenStore:
    """The splits of a prepared corpus, its tokenizer (None for a nanoGPT folder of GPT-2 ids,
    which carries none) and what its manifest records."""

    def __init__(self, folder: Path, splits: dict[str, Tokens], tokenizer, manifest: dict):
        self.folder, self.splits, self.tokenizer, self.manifest = (
            folder,
            splits,
            tokenizer,
            manifest,
        )

    @property
    def vocab_size(self) -> int:
        return self.manifest["vocab_size"]


def is_store(folder: Path) -> bool:
    return (folder / MANIFEST).is_file() or (folder / "train.bin").is_file()


def open_store(folder: str | Path) -> TokenStore:
    folder = Path(folder)
    if (folder / MANIFEST).is_file():
        return _open_fmlab(folder)
    if (folder / "train.bin").is_file():
        return _open_nanogpt(folder)
    raise FmlabError(
        f"{folder} is not a token store: it has neither {MANIFEST} (a store fmlab-prepare wrote) "
        "nor train.bin (nanoGPT's layout). Prepare it with `fmlab-prepare data.corpus=<your "
        "text>`, or point data.corpus at the folder that holds train.bin."
    )


def _open_fmlab(folder: Path) -> TokenStore:
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text())
        if manifest.get("format") != FORMAT:
            raise ValueError(f"format {manifest.get('format')!r}, not {FORMAT!r}")
        if manifest.get("version", 0) > VERSION:
            raise ValueError(
                f"format version {manifest['version']} is newer than this fmlab reads ({VERSION})"
            )
        dtype = np.dtype(manifest["dtype"]).newbyteorder("<")
        splits = {name: _shards(folder, dtype, spec) for name, spec in manifest["splits"].items()}
        tokenizer = tokenizer_from_dict(manifest["tokenizer"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise FmlabError(
            f"the token store {folder} is damaged: {path} cannot be used ({err}). Delete the "
            "folder and prepare it again (fmlab-prepare, or any fmlab-train run on the corpus)."
        ) from None
    return TokenStore(folder, splits, tokenizer, manifest)


def _shards(folder: Path, dtype: np.dtype, spec: dict) -> Tokens:
    maps = []
    for shard in spec["shards"]:
        path = folder / shard["file"]
        expected = shard["tokens"] * dtype.itemsize
        size = path.stat().st_size if path.is_file() else None
        if size != expected:
            found = "missing" if size is None else f"{size:,} bytes"
            raise ValueError(
                f"shard {path} is {found}, but the manifest says {shard['tokens']:,} tokens "
                f"({expected:,} bytes): it was truncated or replaced"
            )
        maps.append(_map(path, dtype))
    return Tokens(maps)


class Shard:
    """A shard file, mapped afresh for every read (nanoGPT re-opens its memmap per batch too): the
    pages one batch touched leave the process with it, so the resident memory of a long run does
    not grow until the whole store counts in it."""

    def __init__(self, path: Path, dtype: np.dtype) -> None:
        self.path, self.dtype = path, dtype
        self.n = path.stat().st_size // dtype.itemsize

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index) -> np.ndarray:
        return np.array(np.memmap(self.path, dtype=self.dtype, mode="r")[index])


def _map(path: Path, dtype: np.dtype) -> Shard | np.ndarray:
    if path.stat().st_size == 0:  # np.memmap refuses an empty file
        return np.zeros(0, dtype=dtype)
    return Shard(path, dtype)


def _open_nanogpt(folder: Path) -> TokenStore:
    """nanoGPT's ``{train,val}.bin``: a character vocabulary from ``meta.pkl`` when present
    (shakespeare_char), else GPT-2's BPE ids (shakespeare, openwebtext)."""
    dtype = np.dtype("<u2")
    splits = {}
    for split in ("train", "val", "test"):
        path = folder / f"{split}.bin"
        if path.is_file():
            if path.stat().st_size % dtype.itemsize:
                raise FmlabError(
                    f"nanoGPT token file {path} has an odd size ({path.stat().st_size:,} bytes): "
                    "it holds uint16 ids, so it was truncated. Write it again with nanoGPT's "
                    "prepare.py."
                )
            splits[split] = Tokens([_map(path, dtype)])
    meta = folder / "meta.pkl"
    if meta.is_file():
        with open(meta, "rb") as f:
            vocab = pickle.load(f)  # nanoGPT's own file: {"vocab_size", "itos", "stoi"}
        # Its ids are the sorted characters, as CharTokenizer's (which adds one unknown id).
        tokenizer = CharTokenizer("".join(vocab["itos"][i] for i in range(vocab["vocab_size"])))
        vocab_size, eot = vocab["vocab_size"], None
    else:  # GPT-2 ids: training needs only the vocabulary size; no tokenizer is carried
        tokenizer, vocab_size, eot = None, GPT2_EOT + 1, GPT2_EOT
    manifest = {
        "format": "nanogpt",
        "dtype": "uint16",
        "vocab_size": vocab_size,
        "eot_id": eot,
        "tokenizer": tokenizer.to_dict() if tokenizer else None,
        "splits": {k: {"tokens": len(v), "shards": [f"{k}.bin"]} for k, v in splits.items()},
    }
    return TokenStore(folder, splits, tokenizer, manifest)

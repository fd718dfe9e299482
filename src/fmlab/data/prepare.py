"""Token stores: a corpus tokenised once into shard files on disk, whatever its size.

``ensure_store(spec)`` returns the folder of the complete store for ``spec``, preparing it first
when it is missing, one process at a time. The folder name holds a hash of the settings, the
source's fingerprint and the tokenizer: a changed source or tokenizer gives a new folder, never a
mixed store. A preparation writes into ``.<name>.building``; ``progress.json`` there records every
closed shard, so an interrupted one continues after it; ``manifest.json`` comes last and the folder
is renamed into place, so a store with a manifest is complete. The format (read by
``fmlab.data.store``) is in the manifest's docstring below.
"""

import hashlib
import json
import logging
import os
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path

import fmlab
from fmlab.data import shards
from fmlab.data.source_formats import fingerprint, open_source
from fmlab.data.sources import Source
from fmlab.data.tokenizers import BPETokenizer, CharTokenizer, HFTokenizer, tokenizer_from_dict
from fmlab.errors import FmlabError
from fmlab.run.cache import _locked
from fmlab.run.files import size, write_atomic

log = logging.getLogger(__name__)
FORMAT, VERSION = "fmlab-token-store", 1
MANIFEST, PROGRESS = "manifest.json", "progress.json"
TOKENIZERS = ("char", "bpe", "tiktoken")  # and hf:<name_or_path>, a Hugging Face model's own


def check_tokenizer(tokenizer: str) -> None:
    if tokenizer not in TOKENIZERS and not (tokenizer.startswith("hf:") and len(tokenizer) > 3):
        raise FmlabError(
            f"data.tokenizer={tokenizer!r}: use char, bpe, tiktoken or hf:<name_or_path> (a Hugging"
            " Face model's tokenizer: a save_pretrained folder or a hub id)."
        )


@dataclass
class PrepareSpec:
    """The data config's keys that define a store (TextDataModule takes the same names)."""

    corpus: str
    data_dir: str
    tokenizer: str = "char"
    bpe_vocab_size: int = 4096
    bpe_train_chars: int = 200_000_000  # bpe trains on the first this many training characters
    tokenizer_file: str | None = None  # tiktoken: a .tiktoken file or GPT-2's vocab.bpe folder
    val_fraction: float = 0.1
    test_fraction: float = 0.0
    encoding: str = "utf-8"
    encoding_errors: str = "strict"
    text_field: str = "text"  # JSON Lines, Parquet and datasets: the field holding the text
    num_proc: int = 1
    shard_tokens: int = 100_000_000
    download: bool = True
    given_tokenizer: dict | None = None  # a checkpoint's tokenizer: encode with it, train none
    cache_dir: str | None = None

    @classmethod
    def from_config(cls, data: dict) -> "PrepareSpec":
        """From a data config: the serving keys (block_size, batch_size, ...) are not its own."""
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def ensure_store(spec: PrepareSpec) -> Path:
    """The folder of the complete store for ``spec``; a store or nanoGPT folder as it is."""
    given = Path(spec.corpus).expanduser()
    if (given / MANIFEST).is_file() or (given / "train.bin").is_file():
        return given
    _check(spec)
    source = open_source(spec)
    found = fingerprint(source.files)  # reads each file's ends: once, for either key below
    if spec.given_tokenizer is not None:
        # A checkpoint's tokenizer (fmlab-eval) reads its own training corpus from the store that
        # training made, when that store's tokenizer is this one: one store, not a second copy.
        trained, _ = _store_folder(replace(spec, given_tokenizer=None), source, found)
        made = (_read_json(trained / MANIFEST) or {}).get("tokenizer_sha256")
        if made == _sha256_json(spec.given_tokenizer):
            return trained
    folder, key = _store_folder(spec, source, found)
    if not (folder / MANIFEST).is_file():
        with _locked(folder.parent / f"{folder.name}.lock", f"token store ({folder})"):
            if not (folder / MANIFEST).is_file():  # not built while this one waited
                _build(spec, source, key["settings"], key["fingerprint"], folder)
    return folder


def _store_folder(spec: PrepareSpec, source: Source, found: str) -> tuple[Path, dict]:
    """The folder of the store for ``spec``, named by a hash of what defines its tokens (its
    settings, and ``found``: the source's fingerprint)."""
    key = {"settings": store_settings(spec, source), "fingerprint": found}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    slug = "".join(c if c.isalnum() else "-" for c in Path(source.name).name)
    kind = spec.tokenizer.partition(":")[0]  # hf:<path> names no folder: its hash is the digest's
    return _cache_root(spec, source) / f"{slug}-{kind}-{digest}", key


def store_settings(spec: PrepareSpec, source: Source) -> dict:
    """What defines the tokens of a store besides its source (num_proc does not: any number of
    processes writes the same bytes)."""
    settings = {
        "store_version": VERSION,
        "split_rule": source.split_rule,
        "val_fraction": spec.val_fraction,
        "test_fraction": spec.test_fraction,
        "encoding": spec.encoding,
        "encoding_errors": spec.encoding_errors,
        "text_field": spec.text_field,
        "tokenizer": spec.tokenizer,
        "shard_tokens": spec.shard_tokens,
    }
    if spec.given_tokenizer is not None:
        settings["given_tokenizer_sha256"] = _sha256_json(spec.given_tokenizer)
    elif spec.tokenizer == "bpe":
        settings.update(bpe_vocab_size=spec.bpe_vocab_size, bpe_train_chars=spec.bpe_train_chars)
    elif spec.tokenizer.startswith("hf:"):  # the tokenizer itself: its folder may change
        settings["tokenizer_sha256"] = _sha256_json(HFTokenizer.load(spec.tokenizer[3:]).to_dict())
    elif spec.tokenizer == "tiktoken":
        from fmlab.data.tokenizers.gpt2_bpe import file_sha256

        settings["tokenizer_file_sha256"] = (
            file_sha256(spec.tokenizer_file) if spec.tokenizer_file else "tiktoken:gpt2"
        )
    return settings


def _build(spec: PrepareSpec, source: Source, settings: dict, source_hash: str, folder: Path):
    tmp = folder.with_name(f".{folder.name}.building")
    tmp.mkdir(parents=True, exist_ok=True)
    progress = _read_json(tmp / PROGRESS) or {}
    if "tokenizer" in progress:
        log.info("Continuing the interrupted preparation in %s", tmp)
        tokenizer = tokenizer_from_dict(progress["tokenizer"])
    else:
        tokenizer = train_tokenizer(spec, source)
        progress = {"tokenizer": tokenizer.to_dict(), "splits": {}}
        write_atomic(tmp / PROGRESS, json.dumps(progress).encode())
    eot_id = tokenizer.eot_id if source.multi_document else None
    if source.multi_document and eot_id is None:
        log.warning("The given tokenizer has no end-of-text id: documents follow one another.")
    dtype = "uint16" if tokenizer.vocab_size <= 2**16 else "uint32"
    log.info(
        "Tokenising %s (%s, %d processes) into %s", spec.corpus, spec.tokenizer, spec.num_proc, tmp
    )

    def record(split: str, state: dict) -> None:
        progress["splits"][split] = state
        write_atomic(tmp / PROGRESS, json.dumps(progress).encode())

    seconds, splits = 0.0, {}
    args = (progress["tokenizer"], eot_id, dtype)
    with shards.Workers(spec.num_proc, shards.start_encoder, args) as workers:
        for split in source.splits():
            state = progress["splits"].get(split)
            if state is None or not state.get("complete"):
                writer = shards.ShardWriter(
                    tmp, split, spec.shard_tokens, state, lambda s, split=split: record(split, s)
                )
                todo = islice(shards.chunks(source.pieces(split)), writer.state["chunks"], None)
                meter = shards.Meter(f"{split} ({spec.tokenizer})")
                for tokens, chars, nbytes, documents in workers.map(shards.encode_chunk, todo):
                    writer.add(tokens, chars, nbytes, documents)
                    meter.update(len(tokens), nbytes)
                seconds += meter.close()
                state = writer.finish()
            splits[split] = _split_summary(spec, split, state)
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "fmlab_version": fmlab.__version__,
        "dtype": dtype,
        "tokenizer": progress["tokenizer"],
        "tokenizer_sha256": _sha256_json(progress["tokenizer"]),
        "vocab_size": tokenizer.vocab_size,
        "eot_id": eot_id,
        "sources": {
            "corpus": spec.corpus,
            "files": [str(p.resolve()) for p in source.files],
            "fingerprint": source_hash,
        },
        "settings": settings,
        "splits": splits,
    }
    (tmp / PROGRESS).unlink()
    write_atomic(tmp / MANIFEST, json.dumps(manifest, indent=1).encode())
    tmp.rename(folder)
    text = sum(s["bytes"] for s in splits.values())
    log.info(
        "Prepared %s: %s in %.1f s (%.1f MB/s of text this run); %s",
        folder,
        size(text),
        seconds,
        text / max(seconds, 1e-9) / 1e6,
        ", ".join(f"{k} {v['tokens']:,} tokens" for k, v in splits.items()),
    )


def _split_summary(spec: PrepareSpec, split: str, state: dict) -> dict:
    if not state["tokens"]:
        raise FmlabError(
            f"the {split} split of data.corpus={spec.corpus!r} is empty: its documents are "
            f"too few for data.{split}_fraction={getattr(spec, f'{split}_fraction', 0):g}. "
            "Use a corpus of more documents, or set that fraction to 0."
        )
    return {k: state[k] for k in ("tokens", "chars", "bytes", "documents", "shards")}


def train_tokenizer(spec: PrepareSpec, source: Source):
    """The given tokenizer, or one trained on the training split (char: all of it, in a
    streaming pass; bpe: its first ``bpe_train_chars`` characters), or GPT-2's (tiktoken)."""
    eot = source.multi_document
    if spec.given_tokenizer is not None:
        return tokenizer_from_dict(spec.given_tokenizer)
    if spec.tokenizer == "tiktoken":
        from fmlab.data.tokenizers.gpt2_bpe import TiktokenTokenizer

        return TiktokenTokenizer.load(spec.tokenizer_file)
    if spec.tokenizer.startswith("hf:"):
        return HFTokenizer.load(spec.tokenizer[3:])
    log.info("Training the %s tokenizer on the training split of %s", spec.tokenizer, spec.corpus)
    if spec.tokenizer == "char":
        pieces = shards.chunks(source.pieces("train"))
        with shards.Workers(spec.num_proc, shards.no_setup) as workers:
            found = set().union(*map(set, workers.map(shards.chars_of, pieces)))
        return CharTokenizer("".join(sorted(found)), eot)
    return BPETokenizer.train(
        _first_chars(source, spec.bpe_train_chars), spec.bpe_vocab_size, eot=eot
    )


def _first_chars(source: Source, limit: int):
    for text, _ in source.pieces("train"):
        yield text[:limit]
        limit -= len(text)
        if limit <= 0:
            return


def _check(spec: PrepareSpec) -> None:
    if spec.given_tokenizer is None:
        check_tokenizer(spec.tokenizer)
    for key in ("val_fraction", "test_fraction"):
        if not 0 <= getattr(spec, key) < 1:
            raise FmlabError(f"data.{key}={getattr(spec, key)!r}: give a fraction in [0, 1).")
    if spec.val_fraction + spec.test_fraction >= 1:
        raise FmlabError(
            f"data.val_fraction + data.test_fraction = {spec.val_fraction + spec.test_fraction:g}"
            " leaves nothing to train on. Lower them so that their sum is below 1."
        )
    for key, low in (("num_proc", 1), ("shard_tokens", 1), ("bpe_vocab_size", 257)):
        if getattr(spec, key) < low:
            raise FmlabError(f"data.{key}={getattr(spec, key)!r}: give at least {low}.")


def _cache_root(spec: PrepareSpec, source: Source) -> Path:
    """``cache_dir``, or ``.fmlab-cache/`` beside the corpus; a read-only data folder (or a hub
    dataset) falls back to the user's cache folder, saying so."""
    home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fmlab" / "tokens"
    if spec.cache_dir:
        wanted = Path(spec.cache_dir).expanduser()
    elif source.local and source.files:
        wanted = source.files[0].parent / ".fmlab-cache"
    else:  # a dataset in the Hugging Face cache
        wanted = home
    try:
        wanted.mkdir(parents=True, exist_ok=True)
        probe = wanted / f".probe.{os.getpid()}"
        probe.touch()
        probe.unlink()
        return wanted
    except OSError as err:
        log.warning(
            "Cannot write the token store to %s (%s); using %s instead. Set data.cache_dir to "
            "choose the folder.",
            wanted,
            err,
            home,
        )
        home.mkdir(parents=True, exist_ok=True)
        return home


def _sha256_json(data: dict) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None

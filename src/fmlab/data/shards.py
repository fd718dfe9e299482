"""Tokenising a stream of text chunks in worker processes, in order, into shard files.

At most ``2 * num_proc`` chunks are in flight (``Pool.imap`` would read its whole input ahead), so
memory stays flat whatever the corpus size, and the shards come out the same for any number of
processes. A shard is closed at a chunk boundary once it holds ``shard_tokens`` tokens; each
closed shard is recorded (with how many chunks it took) so that an interrupted preparation
continues after its last closed shard.
"""

import hashlib
import multiprocessing
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

CHUNK_CHARS = 2_000_000  # text per task: large enough that a task's overhead is noise


def chunks(pieces: Iterable[tuple[str, bool]], size: int | None = None) -> Iterator[list]:
    """Consecutive pieces grouped into lists of at least ``size`` (CHUNK_CHARS) characters."""
    size = size or CHUNK_CHARS
    chunk, chars = [], 0
    for piece in pieces:
        chunk.append(piece)
        chars += len(piece[0])
        if chars >= size:
            yield chunk
            chunk, chars = [], 0
    if chunk:
        yield chunk


class Workers:
    """``num_proc`` spawned processes that each first run ``init(*args)``; one process: this one,
    without a pool. ``map`` gives results in order, reading its input only ``2 * num_proc``
    items ahead."""

    def __init__(self, num_proc: int, init: Callable, args=()) -> None:
        self.num_proc, self.pool = num_proc, None
        if num_proc <= 1:
            init(*args)
        else:
            context = multiprocessing.get_context("spawn")
            self.pool = context.Pool(num_proc, _init_worker, (init, args))

    def map(self, fn: Callable, items: Iterable) -> Iterator:
        if self.pool is None:
            yield from map(fn, items)
            return
        pending = deque()
        for item in items:
            pending.append(self.pool.apply_async(fn, (item,)))
            if len(pending) >= 2 * self.num_proc:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()

    def __enter__(self) -> "Workers":
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.terminate()  # after an error too: no worker outlives the preparation


def _init_worker(init: Callable, args) -> None:
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # the processes are the parallelism
    init(*args)


# ---- what the workers run ----------------------------------------------------------------------
_worker: dict = {}


def start_encoder(tokenizer: dict, eot_id: int | None, dtype: str) -> None:
    from fmlab.data.tokenizers import tokenizer_from_dict

    _worker.update(tokenizer=tokenizer_from_dict(tokenizer), eot_id=eot_id, dtype=dtype)


def encode_chunk(chunk: list[tuple[str, bool]]) -> tuple[np.ndarray, int, int, int]:
    """(tokens, characters, UTF-8 bytes, documents ended) of a chunk; an end-of-text id follows
    every document's last piece when the store has one. Whole-chunk array operations, not one per
    document: a chunk of 2 MB holds hundreds of them, and a character is encoded in nanoseconds."""
    texts = [text for text, _ in chunk]
    ids = _worker["tokenizer"].encode_batch(texts)
    eot, dtype = _worker["eot_id"], _worker["dtype"]
    tokens = np.concatenate(ids).astype(dtype, copy=False) if ids else np.zeros(0, dtype)
    ends = np.array([e for _, e in chunk], dtype=bool)
    if eot is not None and ends.any():
        after = np.cumsum([len(i) for i in ids])[ends]  # where each ended document's ids stop
        tokens = np.insert(tokens, after, np.array(eot, dtype=dtype))
    nbytes = len("".join(texts).encode("utf-8", "surrogatepass"))
    return tokens, sum(map(len, texts)), nbytes, int(ends.sum())


def no_setup() -> None:
    pass


def chars_of(chunk: list[tuple[str, bool]]) -> str:
    """The distinct characters of a chunk (the char tokenizer's vocabulary pass)."""
    return "".join(set().union(*(set(text) for text, _ in chunk)))


# ---- the writing side -------------------------------------------------------------------------
class ShardWriter:
    """The shards ``{split}-{i:06d}.bin`` of one split in ``folder``. ``state`` is what earlier
    runs recorded (closed shards and the chunks they took); ``record(state)`` saves it after every
    closed shard."""

    def __init__(self, folder: Path, split: str, shard_tokens: int, state, record) -> None:
        self.folder, self.split, self.shard_tokens, self.record = (
            folder,
            split,
            shard_tokens,
            record,
        )
        self.state = state or {"chunks": 0, "tokens": 0, "chars": 0, "bytes": 0, "documents": 0}
        self.state.setdefault("shards", [])
        kept = {s["file"] for s in self.state["shards"]}
        for path in folder.glob(f"{split}-*.bin"):  # written after the last record: redone
            if path.name not in kept:
                path.unlink()
        self.file = None
        self.open = {"chunks": 0, "tokens": 0, "chars": 0, "bytes": 0, "documents": 0}

    def add(self, tokens: np.ndarray, chars: int, nbytes: int, documents: int) -> None:
        if self.file is None:
            name = f"{self.split}-{len(self.state['shards']):06d}.bin"
            self.file, self.name, self.digest = (
                open(self.folder / name, "wb"),
                name,
                hashlib.sha256(),
            )
        tokens.tofile(self.file)  # raw little-endian, no header: nanoGPT's train.bin layout
        self.digest.update(memoryview(np.ascontiguousarray(tokens)).cast("B"))
        for key, n in (("chunks", 1), ("tokens", len(tokens)), ("chars", chars)):
            self.open[key] += n
        self.open["bytes"] += nbytes
        self.open["documents"] += documents
        if self.open["tokens"] >= self.shard_tokens:
            self.close()

    def close(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        self.file = None
        shard = {
            "file": self.name,
            "tokens": self.open["tokens"],
            "sha256": self.digest.hexdigest(),
        }
        self.state["shards"].append(shard)
        for key, n in self.open.items():
            self.state[key] += n
        self.open = dict.fromkeys(self.open, 0)
        self.record(self.state)

    def finish(self) -> dict:
        if self.file is not None:
            self.close()
        self.state["complete"] = True
        self.record(self.state)
        return self.state


class Meter:
    """A progress bar on stderr (only on a terminal): MB of text and tokens per second."""

    def __init__(self, what: str) -> None:
        from tqdm import tqdm

        self.bar = tqdm(desc=what, unit="B", unit_scale=True, file=sys.stderr, disable=None)
        self.start, self.tokens, self.bytes = time.perf_counter(), 0, 0

    def update(self, tokens: int, nbytes: int) -> None:
        self.tokens, self.bytes = self.tokens + tokens, self.bytes + nbytes
        seconds = max(time.perf_counter() - self.start, 1e-9)
        self.bar.set_postfix_str(f"{self.tokens / seconds / 1e6:.2f}M tokens/s", refresh=False)
        self.bar.update(nbytes)

    def close(self) -> float:
        self.bar.close()
        return time.perf_counter() - self.start

"""Files written whole or not at all, and a full disk as one message.

Records, checkpoints and cache files are written beside their name and renamed into place: a crash
or a full disk leaves the previous file, never a truncated one. A write that does not fit raises
``DiskFull``, naming the folder, the bytes needed and the bytes free;
``fmlab.commands.failures.job`` adds the newest intact checkpoint of the run and how to continue
from it.
"""

import errno
import hashlib
import io
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from fmlab.errors import FmlabError

FULL = (errno.ENOSPC, errno.EDQUOT)  # no space left; over the user's quota


class DiskFull(FmlabError):
    """No room on the disk of ``folder`` for ``name``, which needed ``needed`` bytes (None:
    not known, e.g. a logger's write)."""

    def __init__(self, folder: Path, name: str | None, needed: int | None) -> None:
        self.folder, self.name, self.needed = Path(folder), name, needed
        self.free = free_bytes(self.folder)
        what = f"writing {name}" if name else "a write"
        need = f"needs {size(needed)}" if needed else "did not fit"
        super().__init__(
            f"no space left on the disk of {self.folder}: {what} {need} and {size(self.free)} "
            "are free."
        )


def write_atomic(path: str | Path, data: bytes | memoryview | Callable[[BinaryIO], object]):
    """Write ``data`` (bytes, or a function that writes into a binary file) to ``path`` through a
    temporary file beside it. Bytes that cannot fit are refused before anything is written."""
    path = Path(path)
    needed = len(data) if isinstance(data, (bytes, bytearray, memoryview)) else None
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if needed is not None and needed > free_bytes(path.parent):
            raise DiskFull(path.parent, path.name, needed)
        tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
        with open(tmp, "xb") as f:  # as any new file: the umask's permissions, not mkstemp's 0600
            f.write(data) if needed is not None else data(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if err.errno in FULL:
            raise DiskFull(path.parent, path.name, needed or _size(data)) from None
        raise
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


def disk_full(err: BaseException, folder: Path) -> DiskFull | None:
    """The full disk behind ``err``, if any: a DiskFull raised anywhere in its chain (a logger's
    own full-disk error during the clean-up may come on top), else a full-disk OSError as one
    (in ``folder`` when it names no file)."""
    chain = []
    while err is not None and err not in chain:
        chain.append(err)
        err = err.__cause__ or err.__context__
    for e in chain:
        if isinstance(e, DiskFull):
            return e
    for e in chain:
        if isinstance(e, OSError) and e.errno in FULL:
            where = Path(e.filename) if e.filename else _file_written(e)
            return DiskFull(where.parent if where else folder, where and where.name, None)
    return None


def _file_written(err: OSError) -> Path | None:
    """The file a failed ``write()`` was writing: Python names none in the error, but the frame
    that wrote holds it (e.g. Hydra's .hydra/config.yaml, a logger's metrics.csv)."""
    frames = []
    tb = err.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):  # innermost first
        for value in frame.f_locals.values():
            if isinstance(value, io.IOBase) and isinstance(getattr(value, "name", None), str):
                return Path(value.name)
    return None


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, read a few MB at a time (a checkpoint may be GBs)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def free_bytes(folder: Path) -> int:
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free


def size(n: int) -> str:
    """1,234,567 bytes (1.2 MB)"""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n:,} bytes ({n / scale:.1f} {unit})"
    return f"{n:,} bytes"


def _size(data) -> int | None:
    """How many bytes a writer function writes, counted without storing them."""
    if not callable(data):
        return None
    counter = _Counter()
    try:
        data(counter)
    except Exception:
        return None
    return counter.n


class _Counter(io.RawIOBase):
    n = 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.n += memoryview(b).nbytes
        return memoryview(b).nbytes

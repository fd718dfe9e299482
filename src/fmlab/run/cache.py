"""Derived files that can be rebuilt (token caches, the FID feature classifier): built by one
process at a time, checked whenever they are read, rebuilt when the check fails.

A cache is a folder whose ``manifest.json`` lists every file's size and sha256 beside what its
builder recorded. It is built in ``.<name>.building`` and renamed into place, so it is complete or
absent; a process that finds another one building it waits on its lock rather than read it
half-written; one that fails its check (a truncated or altered file, no manifest) is moved aside,
with one warning naming it, and built again.
"""

import fcntl
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from fmlab.run.files import file_sha256, write_atomic

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"


def ensure(folder: Path, build: Callable[[Path], dict], what: str) -> dict:
    """The manifest of the cache ``folder``. If it is missing or fails its check, ``build(tmp)``
    first writes its files into the folder ``tmp`` (which may hold what an interrupted build left
    there) and returns what the manifest records besides them."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with _locked(folder.parent / f"{folder.name}.lock", f"{what} ({folder})"):
        if folder.exists():
            manifest, problem = check(folder)
            if problem is None:
                return manifest
            stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
            aside = folder.with_name(f"{folder.name}.corrupt-{stamp}")
            folder.rename(aside)
            log.warning(
                "The %s (%s) failed its check: %s. Moved it aside to %s; building it again.",
                what,
                folder,
                problem,
                aside,
            )
        tmp = folder.with_name(f".{folder.name}.building")
        tmp.mkdir(exist_ok=True)
        manifest = {**build(tmp), "files": _describe(tmp)}
        write_atomic(tmp / MANIFEST, json.dumps(manifest, indent=2).encode())
        tmp.rename(folder)
        return manifest


def check(folder: Path) -> tuple[dict | None, str | None]:
    """(manifest, None) for a cache whose files are those its manifest lists, else (None, what
    is wrong)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None, f"no readable {MANIFEST}: an interrupted build, or an older fmlab's"
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            return None, f"{name} is missing"
        if path.stat().st_size != expected["bytes"]:
            return None, (
                f"{name} holds {path.stat().st_size:,} bytes, its manifest says "
                f"{expected['bytes']:,}"
            )
        if file_sha256(path) != expected["sha256"]:
            return None, f"{name} differs from the checksum in its manifest"
    return manifest, None


@contextmanager
def _locked(path: Path, what: str) -> Iterator[None]:
    with open(path, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("Waiting for another process to finish building the %s", what)
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when that process finishes or dies
        yield


def _describe(folder: Path) -> dict:
    return {
        str(p.relative_to(folder)): {"bytes": p.stat().st_size, "sha256": file_sha256(p)}
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }

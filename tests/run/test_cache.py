"""Rebuildable caches (fmlab.run.cache): built once, checked on every read, moved aside and rebuilt
when a file fails the check, and waited for while another process builds them."""

import json
import threading
import time

import pytest

from fmlab.run import cache


class Builder:
    """Writes two files; counts its calls; can hold the build open until released."""

    def __init__(self) -> None:
        self.calls = 0
        self.started = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def __call__(self, tmp):
        self.calls += 1
        self.started.set()
        (tmp / "tokens.bin").write_bytes(bytes(range(256)) * 40)
        (tmp / "sub").mkdir(exist_ok=True)
        (tmp / "sub" / "vocab.json").write_text('{"a": 0}')
        self.release.wait(timeout=30)
        return {"built_by": "test"}


def test_a_cache_is_built_once_with_sizes_and_checksums(tmp_path):
    build, folder = Builder(), tmp_path / "key"
    first = cache.ensure(folder, build, "test cache")
    assert first["built_by"] == "test" and set(first["files"]) == {"tokens.bin", "sub/vocab.json"}
    assert first["files"]["tokens.bin"]["bytes"] == 10_240
    assert cache.ensure(folder, build, "test cache") == first and build.calls == 1
    assert json.loads((folder / "manifest.json").read_text()) == first
    assert not list(tmp_path.glob(".key.building"))  # built beside, then renamed into place


@pytest.mark.parametrize("damage", ["truncated", "altered", "missing", "no manifest"])
def test_a_cache_failing_its_check_is_moved_aside_and_rebuilt(damage, tmp_path, caplog):
    build, folder = Builder(), tmp_path / "key"
    cache.ensure(folder, build, "test cache")
    tokens = folder / "tokens.bin"
    if damage == "truncated":
        tokens.write_bytes(tokens.read_bytes()[:1000])
    elif damage == "altered":
        tokens.write_bytes(bytes(10_240))  # the same size
    elif damage == "missing":
        tokens.unlink()
    else:
        (folder / "manifest.json").unlink()
    cache.ensure(folder, build, "test cache")
    assert build.calls == 2 and (folder / "tokens.bin").stat().st_size == 10_240
    (aside,) = tmp_path.glob("key.corrupt-*")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and str(folder) in warnings[0] and str(aside) in warnings[0]
    expected = {
        "truncated": "tokens.bin holds 1,000 bytes, its manifest says 10,240",
        "altered": "tokens.bin differs from the checksum in its manifest",
        "missing": "tokens.bin is missing",
        "no manifest": "no readable manifest.json",
    }[damage]
    assert expected in warnings[0]


def test_a_cache_being_built_is_waited_for_not_read_half_written(tmp_path):
    build, folder = Builder(), tmp_path / "key"
    build.release.clear()  # the first builder holds its build open
    first = threading.Thread(target=cache.ensure, args=(folder, build, "test cache"))
    first.start()
    assert build.started.wait(timeout=30)
    seen = {}
    second = threading.Thread(target=lambda: seen.update(cache.ensure(folder, build, "test")))
    second.start()
    time.sleep(0.3)
    assert second.is_alive() and not folder.exists()  # waiting on the lock, not reading
    build.release.set()
    first.join(timeout=30)
    second.join(timeout=30)
    assert build.calls == 1 and seen["files"]["tokens.bin"]["bytes"] == 10_240

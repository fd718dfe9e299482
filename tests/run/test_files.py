"""fmlab.run.files: what a full disk says, whoever hit it (the run through the CLI is in
test_resume.py, on a real small filesystem)."""

from pathlib import Path

import pytest

from fmlab.run.files import DiskFull, disk_full, write_atomic

pytestmark = pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")


def test_a_full_disk_under_a_logger_names_the_file_it_was_writing(tmp_path):
    """/dev/full answers every write with ENOSPC, as a full disk does; Python's error names no
    file, but the frame that wrote holds it."""
    with pytest.raises(OSError) as raised:
        with open("/dev/full", "w") as metrics:
            metrics.write("step,loss\n")
            metrics.flush()
    full = disk_full(raised.value, tmp_path)
    assert (full.folder, full.name, full.needed) == (Path("/dev"), "full", None)
    assert str(full).startswith("no space left on the disk of /dev: writing full did not fit")


def test_the_first_full_disk_wins_over_a_loggers_in_the_clean_up(tmp_path):
    first = DiskFull(tmp_path, "last.ckpt", 5_000_000)
    try:
        try:
            raise first
        except DiskFull:  # a logger, closing, hits the full disk too
            with open("/dev/full", "w") as f:
                f.write("x")
                f.flush()
    except OSError as err:
        assert disk_full(err, tmp_path) is first
    assert "writing last.ckpt needs 5,000,000 bytes (5.0 MB)" in str(first)
    assert disk_full(ValueError("not a disk"), tmp_path) is None


def test_bytes_that_cannot_fit_are_refused_before_a_file_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr("fmlab.run.files.free_bytes", lambda folder: 100)
    with pytest.raises(DiskFull) as raised:
        write_atomic(tmp_path / "results.json", b"x" * 1000)
    assert "writing results.json needs 1,000 bytes (1.0 kB) and 100 bytes are free" in str(
        raised.value
    )
    assert list(tmp_path.iterdir()) == []

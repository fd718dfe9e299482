"""torch_threads (fmlab.run.threads): a run gives torch the cores no other process keeps busy,
looked at as it trains, records what it took, and takes a number or OMP_NUM_THREADS as given."""

import os
import subprocess
import sys
import time

import pytest
import torch

from fmlab.errors import FmlabError
from fmlab.run import threads

CORES = len(os.sched_getaffinity(0))


@pytest.fixture(autouse=True)
def kept_threads(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_a_number_is_taken_as_given():
    chosen, sharing = threads.choose(1)
    assert chosen == {"threads": 1, "cores": CORES, "chosen_by": "torch_threads"}
    assert sharing is None and torch.get_num_threads() == 1


@pytest.mark.parametrize("bad", [0, -2, "many", 1.5, True])
def test_a_bad_number_is_one_clear_error(bad):
    with pytest.raises(FmlabError, match=rf"torch_threads={bad!r}: give a number of threads"):
        threads.choose(bad)


def test_omp_num_threads_is_the_users_choice(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    chosen, sharing = threads.choose("auto")
    assert chosen["chosen_by"] == "OMP_NUM_THREADS" and sharing is None


def test_auto_gives_torch_the_cores_other_processes_leave(monkeypatch):
    """Seconds of (wall, the machine's busy CPU, this process's CPU): alone, every core; while the
    others take all but one core, one thread; alone again, every core."""
    chosen, sharing = threads.choose("auto")
    assert chosen["threads"] == torch.get_num_threads() == CORES and sharing is not None
    looks = iter([(0.0, 0.0, 0.0), (1.0, CORES, 1.0), (2.0, CORES + 1.0, 2.0)])
    monkeypatch.setattr(sharing, "_look", lambda: next(looks))
    sharing.on_train_batch_end(None, None)
    sharing.on_train_batch_end(None, None)  # the others took CORES - 1 of the CORES
    assert torch.get_num_threads() == 1
    sharing.on_train_batch_end(None, None)  # they took nothing
    assert torch.get_num_threads() == CORES
    assert sharing.record() == {"fewest": 1, "most": CORES, "last": CORES}


def test_on_a_machine_kept_busy_by_others_auto_takes_one_thread():
    """Every core busy with a spinning process: /proc/stat, read for real, says so."""
    _, sharing = threads.choose("auto")
    sharing.every_s = 0.3
    spin = "import time\nend = time.time() + 2\nwhile time.time() < end: pass"
    spinners = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(CORES)]
    try:
        time.sleep(0.3)  # they are spinning
        sharing.on_train_batch_end(None, None)
        time.sleep(0.6)
        sharing.on_train_batch_end(None, None)
    finally:
        for p in spinners:
            p.kill()
            p.wait()
    assert torch.get_num_threads() == 1 and sharing.record()["fewest"] == 1

"""Torch's intra-op threads for a run: the cores this process may use, less those that other
processes keep busy, looked at again while it trains.

A lab's machine is shared. Torch's threads wait for each other by spinning, so two runs that each
take every core collapse: two seed_convnet runs on 2 cores ran 6.6x slower each with 2 threads
than alone, and 0.92x with 1 thread each (STACK-FACTS). Two runs started together see each
other only once both compute, so ``torch_threads=auto`` is a callback (``ShareCores``) that
measures every second what the other processes took and gives torch the rest. An integer (or
OMP_NUM_THREADS) decides instead. What was chosen goes into the run record.
"""

import os
import time

import torch
from lightning.pytorch.callbacks import Callback

from fmlab.errors import UsageError

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _machine_busy_s() -> float | None:
    """CPU seconds all cores have been busy since boot (/proc/stat); None off Linux."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields) - idle) / CLOCK_TICKS


class ShareCores(Callback):
    """Every ``every_s`` seconds of training: the cores the other processes kept busy since the
    last look (the machine's busy time less this process's own), and torch's threads set to the
    usable cores less those, at least one. Records the fewest and most threads it set."""

    def __init__(self, every_s: float = 1.0) -> None:
        self.every_s, self.cores = every_s, usable_cores()
        self.threads = torch.get_num_threads()
        self.fewest = self.most = self.threads
        self._last: tuple[float, float, float] | None = None  # wall, machine busy, own CPU

    def _look(self) -> tuple[float, float, float] | None:
        busy = _machine_busy_s()
        return None if busy is None else (time.monotonic(), busy, time.process_time())

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        now = time.monotonic()
        if self._last is not None and now - self._last[0] < self.every_s:
            return
        looked = self._look()
        if looked is None:
            return
        if self._last is not None:
            wall = looked[0] - self._last[0]
            others = ((looked[1] - self._last[1]) - (looked[2] - self._last[2])) / wall
            threads = max(1, min(self.cores, round(self.cores - max(0.0, others))))
            if threads != self.threads:
                torch.set_num_threads(threads)
                self.threads = threads
                self.fewest, self.most = min(self.fewest, threads), max(self.most, threads)
        self._last = looked

    def record(self) -> dict:
        return {"fewest": self.fewest, "most": self.most, "last": self.threads}


def choose(setting: int | str | None) -> tuple[dict, ShareCores | None]:
    """Torch's threads by ``setting`` (``torch_threads``): an integer, or ``auto`` (null too):
    every usable core, shared as the run goes (``ShareCores``); OMP_NUM_THREADS, where set, is
    the user's choice and stays. Returns the record and the callback, if any."""
    cores = usable_cores()
    if setting not in (None, "auto"):
        if isinstance(setting, bool) or not isinstance(setting, int) or setting < 1:
            raise UsageError(
                f"torch_threads={setting!r}: give a number of threads (1 or more), or auto (the "
                "cores no other process keeps busy, looked at every second of training)."
            )
        torch.set_num_threads(setting)
        return {"threads": setting, "cores": cores, "chosen_by": "torch_threads"}, None
    if os.environ.get("OMP_NUM_THREADS"):
        chosen = {"threads": torch.get_num_threads(), "cores": cores}
        return {**chosen, "chosen_by": "OMP_NUM_THREADS"}, None
    torch.set_num_threads(cores)
    return {"threads": cores, "cores": cores, "chosen_by": "auto"}, ShareCores()

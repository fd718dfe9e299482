"""Faults injected into a real fmlab-train run (added with `+callbacks.fault._target_=faults.X`,
this folder on PYTHONPATH). Each strikes once per run folder (a marker file remembers it), so
re-running the same command shows what resuming recovers."""

import os
import signal
import time
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback


class _AtStep(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        marker = Path(trainer.default_root_dir) / f"struck-{type(self).__name__}"
        if trainer.global_step == self.step and not marker.exists():
            marker.touch()
            self.strike(pl_module)


class KillAt(_AtStep):
    """SIGKILL: no handler, no cleanup, as when a node dies or the OOM killer strikes."""

    def strike(self, pl_module) -> None:
        os.kill(os.getpid(), signal.SIGKILL)


class RaiseAt(_AtStep):
    def strike(self, pl_module) -> None:
        raise RuntimeError("injected failure")


class PoisonAt(_AtStep):
    """Makes the weights NaN, so the next step's loss is NaN."""

    def strike(self, pl_module) -> None:
        with torch.no_grad():
            for p in pl_module.parameters():
                p.fill_(float("nan"))


class Slow(Callback):
    """Sleeps after every step, so a tiny run lasts long enough to be pre-empted."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        time.sleep(self.seconds)


class Rendezvous(Callback):
    """Waits at the start of training until ``jobs`` runs have started in ``folder`` (at most
    ``timeout`` seconds, then fails): jobs that complete ran side by side."""

    def __init__(self, folder: str, jobs: int, timeout: float = 300) -> None:
        self.folder, self.jobs, self.timeout = Path(folder), jobs, timeout

    def on_train_start(self, trainer, pl_module) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"started-{os.getpid()}").touch()
        deadline = time.monotonic() + self.timeout
        while len(list(self.folder.glob("started-*"))) < self.jobs:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only one of {self.jobs} runs started within {self.timeout}s")
            time.sleep(0.1)


class WaitFor(Callback):
    """Holds training at its start until the file ``path`` exists (at most ``timeout`` seconds),
    so that a test can act while this run holds its folder."""

    def __init__(self, path: str, timeout: float = 300) -> None:
        self.path, self.timeout = Path(path), timeout

    def on_train_start(self, trainer, pl_module) -> None:
        deadline = time.monotonic() + self.timeout
        while not self.path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)

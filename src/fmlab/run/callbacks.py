"""Callbacks of fmlab-train: what makes a resumed run exact, a stop on a broken loss, validation of
the final weights, and the model summary of the first screen."""

import logging
import os
import random
import signal
import subprocess
import threading
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, RichModelSummary
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from fmlab.errors import NonFiniteLoss

log = logging.getLogger(__name__)


class RandomState(Callback):
    """Saves the random generators in every checkpoint and restores them on resume.

    Lightning saves weights, optimizer, loop counters and the loader's position, but not the RNGs;
    without them a resumed run draws different augmentation and dropout from an uninterrupted one.
    Stored as tensors and ints only, so checkpoints still load with ``weights_only=True``.
    """

    def __init__(self) -> None:
        self._loaded: dict | None = None

    def state_dict(self) -> dict:
        np_state = np.random.get_state()
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
            "numpy": [torch.from_numpy(np_state[1].copy()), *map(int, np_state[2:4])],
            "python": random.getstate(),
        }

    def load_state_dict(self, state_dict: dict) -> None:
        self._loaded = state_dict

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Restored here, not at load time: building the run after loading draws random numbers.
        if self._loaded is None:
            return
        state, self._loaded = self._loaded, None
        torch.set_rng_state(state["torch"])
        if state["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        keys, pos, has_gauss = state["numpy"]
        np.random.set_state(("MT19937", keys.numpy(), pos, has_gauss, 0.0))
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))


class StopOnNonFinite(Callback):
    """Stops training at the first NaN or Inf training loss, before a checkpoint can keep it.

    Each step only copies its loss into a buffer on the device (no synchronisation); the buffer is
    read every ``log_every_n_steps`` steps, at the end of each epoch and before every checkpoint is
    written, so the newest checkpoint on disk is always the last good one.
    """

    def __init__(self) -> None:
        self._losses: torch.Tensor | None = None  # the losses since the last check, on the device
        self._seen, self._first_step = 0, 0  # how many of them; the step of the first
        self._root = Path(".")

    def setup(self, trainer, pl_module, stage: str) -> None:
        self._root = Path(trainer.default_root_dir)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        window = trainer.log_every_n_steps
        if self._losses is None or len(self._losses) != window:
            self._losses = torch.zeros(window, device=loss.device)
        if self._seen == 0:
            self._first_step = trainer.global_step  # optimizer steps done, this one included
        self._losses[self._seen] = loss.detach()  # one copy on the device: no synchronisation
        self._seen += 1
        if self._seen == window:
            self._check()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._check()

    def state_dict(self) -> dict:
        # Called while a checkpoint is being assembled: raising here means it is never written.
        self._check()
        return {}

    def _check(self) -> None:
        if not self._seen:
            return
        bad = (~torch.isfinite(self._losses[: self._seen])).nonzero()
        first_step, self._seen = self._first_step, 0
        if not len(bad):
            return
        saved = sorted(self._root.rglob("*.ckpt"), key=lambda p: p.stat().st_mtime)
        last_good = f"the last good checkpoint is {saved[-1]}" if saved else "none was saved"
        step = first_step + int(bad[0])
        raise NonFiniteLoss(
            f"the training loss became NaN or Inf at step {step}; training stopped "
            f"and {last_good} (nothing after the bad step was written). Lower optimizer.lr, clip "
            "gradients (+trainer.gradient_clip_val=1.0) or check the data, then continue from "
            "that checkpoint with ckpt_path=... or start again."
        )


class FinalValidation(Callback):
    """Makes Lightning validate the weights a fit ends with, whatever stopped it.

    Lightning validates every ``val_check_interval`` and at epoch ends, and when a callback stops
    training early, but not at the step where ``max_steps`` ends it: a recipe that validates every
    500 steps, shortened to 400, would end without a validation. Stopping at that step the way an
    early stop does makes Lightning validate first, inside ``fit``, where checkpoints see it.
    ``validated_at`` is the step of the newest validation, for a run to check afterwards.
    """

    def __init__(self) -> None:
        self.validated_at: int | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if 0 < trainer.max_steps <= trainer.global_step:
            trainer.should_stop = True

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking and trainer.state.fn == TrainerFn.FITTING:
            self.validated_at = trainer.global_step


class Preemption(Callback):
    """On SIGUSR1 (SLURM's warning before pre-emption, ``#SBATCH --signal=USR1@90``, or
    ``scancel --signal=USR1``): at the end of the current step, save the whole training state as
    ``last.ckpt``, requeue the SLURM job, and stop.

    It replaces Lightning's own SLURM handler (which stands aside when USR1 already has one):
    that one saves at once, in the middle of a step, which a resumed run cannot continue exactly.
    """

    def __init__(self, dirpath: str | Path) -> None:
        self.path = Path(dirpath) / "last.ckpt"
        self._requested = False
        self._previous = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage == "fit" and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGUSR1, self._request)

    def teardown(self, trainer, pl_module, stage: str) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGUSR1, self._previous)
            self._previous = None

    def _request(self, signum, frame) -> None:
        self._requested = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if not self._requested:
            return
        trainer.save_checkpoint(self.path)
        log.warning("Pre-emption signal at step %d: saved %s", trainer.global_step, self.path)
        array = os.environ.get("SLURM_ARRAY_JOB_ID")
        job = f"{array}_{os.environ['SLURM_ARRAY_TASK_ID']}" if array else os.getenv("SLURM_JOB_ID")
        if job and trainer.is_global_zero:
            done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
            log.warning("Requeue of SLURM job %s: %s", job, done.stderr.strip() or "done")
        raise SIGTERMException


class ModelSummary(RichModelSummary):
    """Lightning's table of layers and sizes, without a FLOPs column and total that read 0.

    Lightning counts FLOPs only by running the module's ``example_input_array``; fmlab's tasks
    have none (a forward pass at start-up would also compile a compiled net once more, for a
    batch of one), so the column and total are dropped when nothing was counted.
    """

    @staticmethod
    def summarize(
        summary_data,
        total_parameters,
        trainable_parameters,
        model_size,
        total_training_modes,
        total_flops,
        **summarize_kwargs,
    ) -> None:
        from lightning.pytorch.utilities.model_summary import get_human_readable_count
        from rich import get_console
        from rich.table import Table

        columns = [(n, v) for n, v in summary_data if n != "FLOPs" or total_flops]
        table = Table(header_style=summarize_kwargs.get("header_style", "bold magenta"))
        for name, _ in columns:
            table.add_column(name, style="dim" if name == " " else None)
        for row in zip(*(values for _, values in columns), strict=True):
            table.add_row(*row)
        totals = {
            "Trainable params": get_human_readable_count(int(trainable_parameters)),
            "Non-trainable params": get_human_readable_count(
                int(total_parameters - trainable_parameters)
            ),
            "Total params": get_human_readable_count(int(total_parameters)),
            "Total estimated model params size (MB)": f"{model_size:,.3f}",
            "Modules in train / eval mode": f"{total_training_modes['train']} / "
            f"{total_training_modes['eval']}",
        }
        if total_flops:
            totals["Total FLOPs"] = get_human_readable_count(total_flops)
        grid = Table.grid()
        for name, value in totals.items():
            grid.add_row(f"[bold]{name}[/]: {value}")
        get_console().print(table, grid)

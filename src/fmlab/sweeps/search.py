"""A job's side of an Optuna search (`hydra/sweeper=optuna`): report the optimized metric of
every validation to the job's trial, stop training when the study's pruner says so, and tell the
sweeper how the trial ended (a pruned trial raises ``optuna.TrialPruned`` from the job).

The trial is reached through the study's storage (see hydra_plugins.fmlab_optuna_sweeper.trials),
so this works in every process and on every node the launcher runs the job in. Only global rank 0
talks to the study; the other DDP ranks follow its decision.
"""

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig

from fmlab.errors import NonFiniteLoss
from hydra_plugins.fmlab_optuna_sweeper import trials

log = logging.getLogger(__name__)


class TrialFailed(Exception):
    """This trial failed (the sweeper records it as failed and the search goes on)."""


class Pruning(Callback):
    """Reports ``monitor`` after each validation of the fit, as the value at step = epoch, and
    stops the fit when the trial should be pruned (``pruned_epoch`` says when)."""

    def __init__(self, monitor: str, pruner: DictConfig | str, output_dir: Path) -> None:
        self.monitor, self.pruner, self.output_dir = monitor, pruner, output_dir
        self.trial = None  # opened on global rank 0 only
        self.reported: set[int] = set()  # epochs the study holds (a requeued job resumes)
        self.pruned_epoch: int | None = None
        self.unreported = False  # warned that the metric is not logged by validation
        self.study, self.number = os.environ[trials.STUDY], int(os.environ[trials.TRIAL])

    def setup(self, trainer, pl_module, stage: str) -> None:
        if trainer.is_global_zero and self.trial is None:
            self.trial = trials.current_trial(pruner=trials.build(self.pruner, "pruner"))
            self.trial.set_user_attr("output_dir", str(self.output_dir.resolve()))
            held = self.trial.study.get_trials(deepcopy=False)[self.number]
            self.reported = set(held.intermediate_values)

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        epoch, prune = trainer.current_epoch, False
        if trainer.is_global_zero and self.monitor not in trainer.callback_metrics:
            if not self.unreported:
                log.warning("%s is not a validation metric: trial %d reports nothing and is "
                            "never pruned", self.monitor, self.number)  # fmt: skip
            self.unreported = True
        elif trainer.is_global_zero:
            value = float(trainer.callback_metrics[self.monitor])
            if epoch not in self.reported:
                self.trial.report(value, step=epoch)
                self.reported.add(epoch)
            prune = self.trial.should_prune()
        if trainer.strategy.broadcast(prune):
            self.pruned_epoch, trainer.should_stop = epoch, True
            log.info("Trial %d pruned after epoch %d by the study's pruner", self.number, epoch)

    def record(self) -> dict:
        """For results.json: which trial of which study this run was, and where it was pruned."""
        return {"study": self.study, "trial": self.number, "pruned_epoch": self.pruned_epoch}


def pruning(cfg: DictConfig, output_dir: Path) -> Pruning | None:
    """The callback of a job that runs an Optuna trial with one optimized metric, else None."""
    if trials.TRIAL not in os.environ or not isinstance(cfg.get("optimized_metric"), str):
        return None
    # DDP ranks > 0 (a single run of the job's task overrides) have no use for the pruner.
    pruner = HydraConfig.get().sweeper.get("pruner", "none")
    return Pruning(cfg.optimized_metric, pruner, output_dir)


def raise_if_pruned(record: dict) -> None:
    """A pruned run's job ends as a pruned trial: Optuna's TrialPruned, which the sweeper tells
    the study (rank 0's; the other ranks' return values go nowhere)."""
    if record.get("status") == "pruned" and rank_zero_only.rank == 0:
        import optuna

        trials.keep_outcome(None)
        epoch = (record.get("optuna") or {}).get("pruned_epoch")
        raise optuna.TrialPruned(f"pruned after epoch {epoch}: {record.get('output_dir')}")


def kept(value: float | list[float] | None) -> float | list[float] | None:
    """The job's return value, also kept in its trial (if it runs one): the sweeper takes it from
    there should it die before it tells the study."""
    if value is not None and rank_zero_only.rank == 0:
        trials.keep_outcome([value] if isinstance(value, float | int) else list(value))
    return value


@contextmanager
def failing_trial() -> Iterator[None]:
    """In a trial, a run whose loss diverged fails that trial, and the search goes on (within
    hydra.sweeper.max_failure_rate); outside a search, it stays the run's error."""
    try:
        yield
    except NonFiniteLoss as err:
        if trials.TRIAL not in os.environ:
            raise
        log.error("%s", err)
        raise TrialFailed(str(err)) from None

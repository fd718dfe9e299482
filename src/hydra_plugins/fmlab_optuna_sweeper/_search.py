"""One run of the Optuna sweeper: open (or continue) the study, ask a batch of trials, launch them
at once, tell Optuna how each ended, and write the summary.

A job's folder is `<sweep>/<trial number>`, so a study continued in the same sweep folder never
reuses one. A trial left running by a search that was killed is marked failed and its parameters
are asked again (as a new trial); `n_trials` counts the study's ended trials, without those.
"""

import logging
import math
from pathlib import Path

import optuna
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from optuna.trial import FrozenTrial, TrialState

from fmlab.commands.failures import explain
from fmlab.errors import FmlabError

from . import trials as protocol
from ._space import SearchSpace, parse

log = logging.getLogger(__name__)


class Search:
    def __init__(self, sweeper, arguments: list[str]) -> None:
        self.sweeper, self.config = sweeper, sweeper.config
        self.s = OmegaConf.create(sweeper.settings)
        params = OmegaConf.to_container(self.s.params, resolve=True) if self.s.params else {}
        self.space: SearchSpace = parse([*(f"{k}={v}" for k, v in params.items()), *arguments])
        direction = OmegaConf.to_container(self.s, resolve=True)["direction"]
        directions = [direction] if isinstance(direction, str) else direction
        self.directions = [str(d).lower() for d in directions]
        self.sweep_dir = Path(self.config.hydra.sweep.dir)
        self.storage = protocol.storage_spec(self.s.storage, str(self.sweep_dir))
        self.name = self.s.study_name or self.sweep_dir.name
        metric = self.config.get("optimized_metric")  # fmlab's; another app may have none
        self.metric = list(metric) if OmegaConf.is_list(metric) else metric
        self.failures: list[str] = []

    def run(self) -> optuna.Study:
        self._check()
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, self.sweep_dir / "multirun.yaml")
        study = optuna.create_study(
            study_name=self.name,
            storage=protocol.open_storage(self.storage),
            pruner=protocol.build(self.s.pruner, "pruner"),
            directions=self.directions,
            load_if_exists=True,
        )
        study.sampler = self._sampler(len(study.get_trials(deepcopy=False)))
        if (held := [d.name.lower() for d in study.directions]) != self.directions:
            raise FmlabError(
                f"study {self.name!r} in {self.storage} optimises {held}, not {self.directions}: "
                "set hydra.sweeper.direction to match, or name another study."
            )
        self._recover(study)
        log.info(
            "Optuna study %r in %s: %d of %d trials ended; %s, %s, %d at a time",
            self.name, self.storage, _ended(study), self.s.n_trials,
            type(study.sampler).__name__, type(study.pruner).__name__, self.s.n_jobs,
        )  # fmt: skip
        while (left := self.s.n_trials - _ended(study)) > 0:
            batch = [study.ask(self.space.distributions) for _ in range(min(self.s.n_jobs, left))]
            for trial, ret in zip(batch, self._launch(batch), strict=True):
                self._tell(study, trial.number, ret)
            if len(self.failures) > self.s.max_failure_rate * self.s.n_trials:
                raise FmlabError(self._failed_message())
        self._summarize(study)
        return study

    def _check(self) -> None:
        if not self.directions or set(self.directions) - {"minimize", "maximize"}:
            raise FmlabError(
                f"hydra.sweeper.direction={self.directions}: give minimize or maximize, or a list "
                "of them (one per metric of optimized_metric)."
            )
        if self.s.n_jobs < 1 or self.s.n_trials < 0:
            raise FmlabError(
                f"hydra.sweeper.n_jobs={self.s.n_jobs} and n_trials={self.s.n_trials}: give "
                "n_jobs >= 1 (trials at once) and n_trials >= 0 (trials the study ends with)."
            )
        names = [self.metric] if isinstance(self.metric, str) else list(self.metric or [])
        if self.metric is not None and len(names) != len(self.directions):
            raise FmlabError(
                f"optimized_metric={names} names {len(names)} metric(s), but "
                f"hydra.sweeper.direction={self.directions} gives {len(self.directions)}: give one "
                "direction per metric, e.g. hydra.sweeper.direction=[maximize,minimize]."
            )
        pruner = protocol.option(self.s.pruner, "pruner")._target_
        if len(self.directions) > 1 and pruner != "optuna.pruners.NopPruner":
            raise FmlabError(
                "Optuna prunes single-objective searches only: with several metrics in "
                "optimized_metric, set hydra.sweeper.pruner=none."
            )
        # Compose each choice once (and every key): a misspelled key or option is reported
        # before the first trial runs.
        loader = self.sweeper.hydra_context.config_loader
        try:
            for overrides in self.space.probes():
                loader.load_sweep_config(self.config, overrides)
        except ConfigCompositionException as err:
            raise FmlabError(
                f"the search space (hydra.sweeper.params and the command line): {explain(err)}"
            ) from None

    def _sampler(self, n_before: int) -> optuna.samplers.BaseSampler:
        """The configured sampler; continuing a study, its seed is offset by the trials the study
        holds, or the seeded sampler would propose the study's first trials again."""
        node = protocol.option(self.s.sampler, "sampler")
        if n_before and node.get("seed") is not None:
            node = OmegaConf.merge(node, {"seed": node.seed + n_before})
        return protocol.build(node, "sampler")

    def _recover(self, study: optuna.Study) -> None:
        """Trials left running by a search that stopped: told how their job ended if it did, else
        marked failed, and their parameters asked again."""
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            outcome = trial.user_attrs.get(protocol.OUTCOME)
            if outcome == "pruned":
                study.tell(trial.number, state=TrialState.PRUNED)
            elif outcome is not None:
                study.tell(trial.number, outcome)
            else:
                study.tell(trial.number, state=TrialState.FAIL)
                study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
            log.warning(
                "Trial %d was left running by a search that stopped: %s.",
                trial.number,
                f"its job had ended ({outcome}), told so" if outcome is not None else
                "marked failed, and its parameters are asked again",
            )  # fmt: skip

    def _launch(self, batch: list[optuna.trial.Trial]) -> list[JobReturn]:
        """One launch per run of consecutive trial numbers (one, unless another process asks
        trials of this study too): the job number, and so the folder, is the trial's number."""
        returns: list[JobReturn] = []
        runs = [[batch[0]]]
        for trial in batch[1:]:
            if trial.number == runs[-1][-1].number + 1:
                runs[-1].append(trial)
            else:
                runs.append([trial])
        for run in runs:
            overrides = [
                [*self.space.overrides(t.params), *protocol.env(self.storage, self.name, t.number)]
                for t in run
            ]
            returns += self.sweeper.launcher.launch(overrides, initial_job_idx=run[0].number)
        return returns

    def _tell(self, study: optuna.Study, number: int, ret: JobReturn) -> None:
        failed = ret.status != JobStatus.COMPLETED
        error = ret._return_value if failed else None  # the job's exception (return_value raises)
        if isinstance(error, optuna.TrialPruned):
            study.tell(number, state=TrialState.PRUNED)
            return
        if not failed:
            values = self._values(number, ret.return_value)
            if all(math.isfinite(v) for v in values):
                study.tell(number, values)
                return
            error = ValueError(f"its job returned {values}")
        study.tell(number, state=TrialState.FAIL)
        folder = ret.hydra_cfg.hydra.runtime.output_dir if ret.hydra_cfg else "?"
        self.failures.append(f"trial {number} ({error}; job folder {folder})")
        log.warning("Trial %d failed: %s", number, error, exc_info=_trace(error))

    def _values(self, number: int, returned) -> list[float]:
        values = list(returned) if isinstance(returned, list | tuple) else [returned]
        try:
            values = [float(v) for v in values]
        except (TypeError, ValueError):
            raise FmlabError(
                f"trial {number}'s job returned {returned!r}, not the value of each metric it "
                "optimises: the task function must return a number, or a list of them (one per "
                "hydra.sweeper.direction)."
            ) from None
        if len(values) != len(self.directions):
            raise FmlabError(
                f"trial {number} returned {len(values)} value(s) for {len(self.directions)} "
                "direction(s): give one hydra.sweeper.direction per optimized metric."
            )
        return values

    def _failed_message(self) -> str:
        return (
            f"{len(self.failures)} trial(s) failed, more than max_failure_rate="
            f"{self.s.max_failure_rate} of n_trials={self.s.n_trials} allows; the last: "
            f"{self.failures[-1]}. Fix what fails, or raise hydra.sweeper.max_failure_rate to let "
            "the search go on past failed trials. Run the same command again to continue."
        )

    def _summarize(self, study: optuna.Study) -> None:
        trials = study.get_trials(deepcopy=False)
        counts = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
        summary = {
            "name": "optuna",
            "study_name": self.name,
            "storage": self.storage,
            "optimized_metric": self.metric,
            "directions": self.directions,
            "trials": {k: v for k, v in counts.items() if v},
        }
        log.info("Study %r: %s", self.name, summary["trials"])
        if not any(t.state == TrialState.COMPLETE for t in trials):
            log.warning("No trial of study %r completed: no best trial.", self.name)
        elif len(self.directions) == 1:
            best = study.best_trial
            summary.update(best_trial=_trial(best), best_params=best.params, best_value=best.value)
            log.info(
                "Best trial %d: %s = %s, %s", best.number, self.metric, best.value, best.params
            )
        else:  # the Pareto front
            summary["solutions"] = [_trial(t) for t in study.best_trials]
            log.info("Pareto front of %d trial(s), %s:", len(study.best_trials), self.metric)
            for t in study.best_trials:
                log.info("    trial %d: %s, %s", t.number, t.values, t.params)
        path = self.sweep_dir / "optimization_results.yaml"
        OmegaConf.save(OmegaConf.create(summary), path)
        log.info("Summary of the study %r: %s", self.name, path)


def _ended(study: optuna.Study) -> int:
    """Ended trials that count toward n_trials: not those whose job died and were asked again."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    return sum(t.state.is_finished() and t.number not in retried for t in trials)


def _trial(t: FrozenTrial) -> dict:
    return {
        "number": t.number,
        "values": t.values,
        "params": t.params,
        "job_dir": t.user_attrs.get("output_dir"),
    }


def _trace(error: BaseException):
    return error if error.__traceback__ is not None else None

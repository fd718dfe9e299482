"""Structured configs of `hydra/sweeper=optuna` and its groups `sampler` and `pruner`.

Typos in these keys are errors that name the key (`hydra.sweeper.n_trial=3` is refused). A
sampler's or pruner's argument left at null takes Optuna's own default, which changes between
Optuna versions (Optuna 5's TPE is multivariate and a constant liar by default, 4's is not).
Each sampler's and pruner's keys are its Optuna constructor's arguments
(https://optuna.readthedocs.io/en/stable/reference/samplers/index.html, .../pruners.html).
"""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class TPESampler:  # Optuna's default: Tree-structured Parzen Estimator
    _target_: str = "optuna.samplers.TPESampler"
    seed: int | None = None
    n_startup_trials: int | None = None
    n_ei_candidates: int | None = None
    multivariate: bool | None = None
    group: bool | None = None
    constant_liar: bool | None = None  # for parallel trials: pending ones count as bad
    consider_endpoints: bool | None = None
    prior_weight: float | None = None


@dataclass
class RandomSampler:
    _target_: str = "optuna.samplers.RandomSampler"
    seed: int | None = None


@dataclass
class CmaEsSampler:  # needs the `cmaes` package
    _target_: str = "optuna.samplers.CmaEsSampler"
    seed: int | None = None
    x0: dict[str, Any] | None = None
    sigma0: float | None = None
    n_startup_trials: int | None = None
    popsize: int | None = None
    inc_popsize: int | None = None
    restart_strategy: str | None = None  # ipop or bipop
    use_separable_cma: bool | None = None
    with_margin: bool | None = None
    lr_adapt: bool | None = None
    consider_pruned_trials: bool | None = None
    warn_independent_sampling: bool | None = None


@dataclass
class GPSampler:  # Gaussian-process Bayesian optimisation (torch and scipy)
    _target_: str = "optuna.samplers.GPSampler"
    seed: int | None = None
    n_startup_trials: int | None = None
    deterministic_objective: bool | None = None
    warn_independent_sampling: bool | None = None


@dataclass
class QMCSampler:  # quasi-random (Sobol or Halton): a space-filling design (scipy)
    _target_: str = "optuna.samplers.QMCSampler"
    seed: int | None = None
    qmc_type: str | None = None  # sobol or halton
    scramble: bool | None = None
    warn_asynchronous_seeding: bool | None = None
    warn_independent_sampling: bool | None = None


@dataclass
class NSGAIISampler:  # multi-objective evolution
    _target_: str = "optuna.samplers.NSGAIISampler"
    seed: int | None = None
    population_size: int | None = None
    mutation_prob: float | None = None
    crossover_prob: float | None = None
    swapping_prob: float | None = None


@dataclass
class MedianPruner:  # stop a trial whose value is worse than the median of finished trials'
    _target_: str = "optuna.pruners.MedianPruner"
    n_startup_trials: int | None = None  # finished trials before anything is pruned
    n_warmup_steps: int | None = None  # epochs of each trial that are never pruned
    interval_steps: int | None = None
    n_min_trials: int | None = None


@dataclass
class HyperbandPruner:
    _target_: str = "optuna.pruners.HyperbandPruner"
    min_resource: int | None = None  # epochs
    max_resource: Any | None = None  # epochs, or "auto"
    reduction_factor: int | None = None
    bootstrap_count: int | None = None


@dataclass
class NopPruner:
    _target_: str = "optuna.pruners.NopPruner"


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.fmlab_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    _recursive_: bool = False  # the sweeper builds sampler and pruner itself, when it runs
    defaults: list[Any] = field(default_factory=lambda: [{"sampler": "tpe"}, {"pruner": "none"}])
    sampler: Any = MISSING
    pruner: Any = MISSING
    # minimize or maximize; a list of them for as many objectives (optimized_metric a list)
    direction: Any = "minimize"
    # null: a journal file in the sweep folder (<sweep>/optuna.journal); sqlite:///search.db
    # (any SQLAlchemy URL); or the path of a journal file, e.g. logs/search.journal
    storage: str | None = None
    study_name: str | None = None  # null: the sweep folder's name
    n_trials: int = 20  # trials the study ends with: a re-run continues up to this many
    n_jobs: int = 1  # trials launched at once, as one batch of the launcher
    max_failure_rate: float = 0.0  # the search stops when more than this x n_trials have failed
    params: dict[str, Any] | None = None  # the search space: key: interval(...), choice(...)


# `hydra/sweeper/sampler=random` (the group: its arguments can be set), or just the name:
# `hydra.sweeper.sampler=random` (Optuna's defaults); the same for the pruner.
OPTIONS = {
    "sampler": {
        "tpe": TPESampler,
        "random": RandomSampler,
        "cmaes": CmaEsSampler,
        "gp": GPSampler,
        "qmc": QMCSampler,
        "nsgaii": NSGAIISampler,
    },
    "pruner": {"median": MedianPruner, "hyperband": HyperbandPruner, "none": NopPruner},
}

_store = ConfigStore.instance()
_store.store(group="hydra/sweeper", name="optuna", node=OptunaSweeperConf, provider="fmlab")
for _kind, _options in OPTIONS.items():
    for _name, _node in _options.items():
        _store.store(group=f"hydra/sweeper/{_kind}", name=_name, node=_node, provider="fmlab")

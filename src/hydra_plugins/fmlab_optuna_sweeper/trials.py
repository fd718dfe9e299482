"""How a job finds the Optuna trial it runs: the sweeper launches it with three environment
variables (through `hydra.job.env_set`, so they reach DDP ranks and SLURM tasks too), and the job
opens the same study through the same storage, in whatever process or node it runs.

Imported by Hydra at every start: Optuna is imported inside the functions only.
"""

import os
from pathlib import Path

STORAGE, STUDY, TRIAL = "FMLAB_OPTUNA_STORAGE", "FMLAB_OPTUNA_STUDY", "FMLAB_OPTUNA_TRIAL"
ENV = (STORAGE, STUDY, TRIAL)
OUTCOME = "job_outcome"  # the trial's user attribute: the values its job returned, or "pruned"


def storage_spec(storage: str | None, sweep_dir: str) -> str:
    """The study's storage as every job can open it from any working directory: an SQLAlchemy
    URL (``sqlite:///search.db`` made absolute), else the absolute path of a journal file; null is
    ``<sweep>/optuna.journal``."""
    if storage is None:
        return str(Path(sweep_dir, "optuna.journal").resolve())
    storage = str(storage)
    if storage.startswith("sqlite:///") and not storage.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(storage[len("sqlite:///") :]).resolve())
    if "://" in storage:
        return storage
    return str(Path(storage).expanduser().resolve())


def open_storage(spec: str):
    """An Optuna storage: RDB for a URL, else a journal file (file locks; safe on a shared
    filesystem, where SLURM jobs reach it)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if "://" in spec:
        return optuna.storages.RDBStorage(spec)
    Path(spec).parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(spec))


def env(spec: str, study_name: str, number: int) -> list[str]:
    """Hydra overrides that hand one trial's identity to its job."""
    values = {STORAGE: spec, STUDY: study_name, TRIAL: number}
    quoted = {k: str(v).replace("'", "\\'") for k, v in values.items()}  # Hydra's quoted string
    return [f"++hydra.job.env_set.{k}='{v}'" for k, v in quoted.items()]


def option(node, kind: str):
    """The config of a sampler or pruner: its node, or the node of an option given by name."""
    from omegaconf import OmegaConf

    from fmlab.errors import FmlabError

    from .config import OPTIONS

    if not isinstance(node, str):
        return node
    if node not in OPTIONS[kind]:
        raise FmlabError(
            f"hydra.sweeper.{kind}={node} is not an Optuna {kind} of this sweeper; the {kind}s "
            f"are: {', '.join(OPTIONS[kind])}."
        )
    return OmegaConf.structured(OPTIONS[kind][node])


def build(node, kind: str):
    """A sampler or pruner from its config (or name); arguments at null take Optuna's default."""
    from hydra.utils import get_class
    from omegaconf import OmegaConf

    kwargs = OmegaConf.to_container(option(node, kind), resolve=True)
    target = kwargs.pop("_target_")
    return get_class(target)(**{k: v for k, v in kwargs.items() if v is not None})


def current_trial(pruner=None):
    """The Optuna trial this job runs (``optuna.trial.Trial``, to report to and ask whether to
    prune), or None outside a search. ``pruner``: the sweeper's, which decides ``should_prune``."""
    if TRIAL not in os.environ:
        return None
    import optuna

    storage = open_storage(os.environ[STORAGE])
    name, number = os.environ[STUDY], int(os.environ[TRIAL])
    study = optuna.load_study(study_name=name, storage=storage, pruner=pruner)
    study_id = storage.get_study_id_from_name(name)
    return optuna.trial.Trial(
        study, storage.get_trial_id_from_study_id_trial_number(study_id, number)
    )


def keep_outcome(values: list[float] | None) -> None:
    """At the end of a trial's job, its values (None: pruned) kept in the trial: a search that
    dies before it tells them takes them from there instead of running the trial again."""
    trial = current_trial()
    if trial is not None:
        trial.set_user_attr(OUTCOME, "pruned" if values is None else values)

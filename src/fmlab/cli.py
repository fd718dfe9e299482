"""The console scripts fmlab-train, fmlab-eval, fmlab-sample, fmlab-prepare, fmlab-export and
fmlab-coord-check: Hydra apps over conf/, each handing its composed config to its command in
``fmlab.commands``.

Only Hydra and OmegaConf load before the command line is parsed; torch and Lightning load when a
job starts. `--help`, `--cfg job`, `--info` and every TAB of Hydra's shell completion run this far
and no further, so they answer at once.
"""

import gc

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

import fmlab.config.resolvers  # noqa: F401  (the ${fmlab.*:} resolvers, before Hydra composes)
from fmlab import CONF_DIR
from fmlab.commands import failures

# fmlab-eval's `data.KEY=value` go on top of the checkpoint's data config, whatever data module it
# names: an open node (YAML cannot make one), so they need no `+`; fmlab.commands.evaluate checks
# the keys.
ConfigStore.instance().store(name="eval_data", node=OmegaConf.create({}, flags={"struct": False}))


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def _train(cfg: DictConfig) -> float | None:
    from fmlab.commands.train import run_job

    return failures.job(run_job, cfg)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="eval")
def _evaluate(cfg: DictConfig) -> None:
    from fmlab.commands.evaluate import evaluate

    failures.job(evaluate, cfg)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="sample")
def _sample(cfg: DictConfig) -> None:
    from fmlab.commands.sample import sample

    failures.job(sample, cfg)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="coord_check")
def _coord_check(cfg: DictConfig) -> None:
    from fmlab.commands.coord_check import coord_check

    failures.job(coord_check, cfg)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="prepare")
def _prepare(cfg: DictConfig) -> None:
    from fmlab.commands.prepare import prepare_job

    failures.job(prepare_job, cfg)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="export")
def _export(cfg: DictConfig) -> None:
    from fmlab.commands.export import export

    failures.job(export, cfg)


def _app(hydra_main, name: str):
    try:
        return failures.cli(hydra_main, name)
    finally:
        # The process ends next, and Python's last collection would walk every object torch and
        # Lightning made (1.1 s of a run's exit, measured; 0.2 s frozen); nothing left needs it.
        gc.freeze()


def train() -> float | None:
    return _app(_train, "fmlab-train")


def evaluate() -> None:
    _app(_evaluate, "fmlab-eval")


def sample() -> None:
    _app(_sample, "fmlab-sample")


def prepare() -> None:
    _app(_prepare, "fmlab-prepare")


def export() -> None:
    _app(_export, "fmlab-export")


def coord_check() -> None:
    _app(_coord_check, "fmlab-coord-check")

"""The console scripts fmlab-train, fmlab-eval, fmlab-sample, fmlab-prepare and fmlab-export: Hydra
apps over conf/, each handing its composed config to its command in ``fmlab.commands``.

Only Hydra and OmegaConf load before the command line is parsed; torch and Lightning load when a
job starts. `--help`, `--cfg job`, `--info` and every TAB of Hydra's shell completion run this far
and no further, so they answer at once.
"""

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


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="prepare")
def _prepare(cfg: DictConfig) -> None:
    from fmlab.commands.prepare import prepare_job

    failures.job(prepare_job, cfg)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="export")
def _export(cfg: DictConfig) -> None:
    from fmlab.commands.export import export

    failures.job(export, cfg)


def train() -> float | None:
    return failures.cli(_train, "fmlab-train")


def evaluate() -> None:
    failures.cli(_evaluate, "fmlab-eval")


def sample() -> None:
    failures.cli(_sample, "fmlab-sample")


def prepare() -> None:
    failures.cli(_prepare, "fmlab-prepare")


def export() -> None:
    failures.cli(_export, "fmlab-export")

"""The console scripts fmlab-train, fmlab-eval, fmlab-sample, fmlab-prepare and fmlab-export: Hydra
apps over conf/.

Only Hydra and OmegaConf load before the command line is parsed; torch and Lightning load when a
job starts. `--help`, `--cfg job`, `--info` and every TAB of Hydra's shell completion run this far
and no further, so they answer at once.
"""

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

import fmlab.resolvers  # noqa: F401  (the ${fmlab.*:} resolvers, before Hydra composes)
from fmlab import CONF_DIR, checks

# fmlab-eval's `data.KEY=value` go on top of the checkpoint's data config, whatever data module it
# names: an open node (YAML cannot make one), so they need no `+`; fmlab.evaluate checks the keys.
ConfigStore.instance().store(name="eval_data", node=OmegaConf.create({}, flags={"struct": False}))


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def _train(cfg: DictConfig) -> float | None:
    from fmlab.train import run_job

    return checks.job(run_job, cfg)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="eval")
def _evaluate(cfg: DictConfig) -> None:
    from fmlab.evaluate import evaluate

    checks.job(evaluate, cfg)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="sample")
def _sample(cfg: DictConfig) -> None:
    from fmlab.sample import sample

    checks.job(sample, cfg)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="prepare")
def _prepare(cfg: DictConfig) -> None:
    from fmlab.data.prepare import prepare_job

    checks.job(prepare_job, cfg)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="export")
def _export(cfg: DictConfig) -> None:
    from fmlab.hub.export import export

    checks.job(export, cfg)


def train() -> float | None:
    return checks.cli(_train, "fmlab-train")


def evaluate() -> None:
    checks.cli(_evaluate, "fmlab-eval")


def sample() -> None:
    checks.cli(_sample, "fmlab-sample")


def prepare() -> None:
    checks.cli(_prepare, "fmlab-prepare")


def export() -> None:
    checks.cli(_export, "fmlab-export")

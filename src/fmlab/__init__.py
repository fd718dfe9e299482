"""fmlab: Lightning models, Hydra configs and W&B tracking for foundation-model research."""

from pathlib import Path

from omegaconf import OmegaConf

__version__ = "0.1.0"

# The repository's conf/ folder: fmlab is installed editable from its checkout (`make install`).
CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")

# `${fmlab.first:a,b}`: the first of its arguments that is set. conf/hydra/default.yaml names
# a run's folder by `run_id` when one is given (so a re-run finds it), else by the time.
OmegaConf.register_new_resolver(
    "fmlab.first", lambda *values: next((v for v in values if v), None), replace=True
)

"""fmlab: Lightning models, Hydra configs and W&B tracking for foundation-model research."""

from pathlib import Path

__version__ = "0.1.0"

# The repository's conf/ folder: fmlab is installed editable from its checkout (`make install`).
CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")

"""fmlab: Lightning models, Hydra configs and W&B tracking for foundation-model research."""

import importlib.abc
import importlib.util
import sys
import time
from pathlib import Path

__version__ = "0.1.0"

# A run's clock starts here, at the first import of the command's process (the interpreter's own
# start, ~0.05 s, is all it misses): imports count in its start-up (fmlab.commands.train's timing).
STARTED = time.monotonic()

# The repository's conf/ folder: fmlab is installed editable from its checkout (`make install`).
CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")


class _TorchmetricsWithoutTransformers(importlib.abc.MetaPathFinder):
    """torchmetrics imports transformers whenever it is installed, for BERTScore, InfoLM and CLIP
    metrics that fmlab does not use (Lightning-AI/torchmetrics#2242), and Lightning imports
    torchmetrics: with fmlab's Hugging Face support installed, every run would start a second
    later. When torchmetrics reads which packages it has, it is told transformers is absent;
    fmlab's own Hugging Face code imports transformers directly and is not affected."""

    FLAGS = ("_TRANSFORMERS_AVAILABLE", "_TRANSFORMERS_GREATER_EQUAL_4_4")
    FLAGS += ("_TRANSFORMERS_GREATER_EQUAL_4_10",)

    def find_spec(self, name, path, target=None):
        if name != "torchmetrics.utilities.imports":
            return None
        sys.meta_path.remove(self)  # once: the real finders locate the module
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def exec_module(module) -> None:
            load(module)
            for flag in self.FLAGS:
                if hasattr(module, flag):
                    setattr(module, flag, False)

        spec.loader.exec_module = exec_module
        return spec


if "torchmetrics" not in sys.modules:
    sys.meta_path.insert(0, _TorchmetricsWithoutTransformers())

"""LightningDataModules: data held in memory, augmented in whole batches on the device.

The modules load when first named (``fmlab.data.TextDataModule``): the token-store preparation's
worker processes import ``fmlab.data.shards`` without loading torch and Lightning.
"""

import importlib

_MODULES = {
    "CIFAR10DataModule": "fmlab.data.cifar10",
    "LabelledTextDataModule": "fmlab.data.labelled_text",
    "TextDataModule": "fmlab.data.text",
}
__all__ = list(_MODULES)


def __getattr__(name: str):
    if name in _MODULES:
        return getattr(importlib.import_module(_MODULES[name]), name)
    raise AttributeError(f"module 'fmlab.data' has no attribute {name!r}")

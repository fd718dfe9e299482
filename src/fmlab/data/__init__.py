"""LightningDataModules: data held in memory, augmented in whole batches on the device."""

from fmlab.data.cifar10 import CIFAR10DataModule

__all__ = ["CIFAR10DataModule"]

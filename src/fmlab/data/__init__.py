"""LightningDataModules: data held in memory, augmented in whole batches on the device."""

from fmlab.data.cifar10 import CIFAR10DataModule
from fmlab.data.labelled_text import LabelledTextDataModule
from fmlab.data.text import TextDataModule

__all__ = ["CIFAR10DataModule", "LabelledTextDataModule", "TextDataModule"]

"""LightningModules, one per task; each takes its network, optimizer and scheduler by injection."""

from fmlab.tasks.classification import ImageClassifier
from fmlab.tasks.gan import GAN

__all__ = ["GAN", "ImageClassifier"]

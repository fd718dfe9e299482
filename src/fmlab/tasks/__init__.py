"""LightningModules, one per task; each takes its network, optimizer and scheduler by injection."""

from fmlab.tasks.classification import ImageClassifier

__all__ = ["ImageClassifier"]

"""LightningModules, one per task; each takes its network, optimizer and scheduler by injection."""

from fmlab.tasks.classification import ImageClassifier
from fmlab.tasks.gan import GAN
from fmlab.tasks.language_model import LanguageModel
from fmlab.tasks.masked_lm import MaskedLM

__all__ = ["GAN", "ImageClassifier", "LanguageModel", "MaskedLM"]

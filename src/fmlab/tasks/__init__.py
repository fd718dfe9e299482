"""LightningModules, one per task; each takes its network, optimizer and scheduler by injection."""

from fmlab.tasks.classification import ImageClassifier
<<<<<<< HEAD
from fmlab.tasks.language_model import LanguageModel

__all__ = ["ImageClassifier", "LanguageModel"]
=======
from fmlab.tasks.gan import GAN

__all__ = ["GAN", "ImageClassifier"]
>>>>>>> main

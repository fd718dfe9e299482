"""Plain torch.nn.Module networks: they import only torch and return logits."""

from fmlab.nets.convnet import ConvNet
<<<<<<< HEAD
from fmlab.nets.gpt import GPT
from fmlab.nets.rnn import RecurrentLM
from fmlab.nets.sequence_classifier import SequenceClassifier

__all__ = ["GPT", "ConvNet", "RecurrentLM", "SequenceClassifier"]
=======
from fmlab.nets.dcgan import DCGAN, Discriminator, Generator

__all__ = ["ConvNet", "DCGAN", "Discriminator", "Generator"]
>>>>>>> main

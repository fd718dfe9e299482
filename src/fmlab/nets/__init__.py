"""Plain torch.nn.Module networks: they import only torch and return logits."""

from fmlab.nets.convnet import ConvNet
from fmlab.nets.dcgan import DCGAN, Discriminator, Generator
from fmlab.nets.gpt import GPT
from fmlab.nets.rnn import RecurrentLM
from fmlab.nets.sequence_classifier import SequenceClassifier

__all__ = [
    "DCGAN",
    "GPT",
    "ConvNet",
    "Discriminator",
    "Generator",
    "RecurrentLM",
    "SequenceClassifier",
]

"""Plain torch.nn.Module networks: they import only torch and return logits."""

from fmlab.nets.convnet import ConvNet
from fmlab.nets.dcgan import DCGAN, Discriminator, Generator

__all__ = ["ConvNet", "DCGAN", "Discriminator", "Generator"]

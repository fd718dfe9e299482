"""Plain torch.nn.Module networks: they import only torch and return logits."""

from fmlab.nets.convnet import ConvNet

__all__ = ["ConvNet"]

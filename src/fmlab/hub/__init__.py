"""Adapters to models from the ecosystem (timm), built from fmlab's configs like its own nets."""

from fmlab.hub.vision import TimmNet

__all__ = ["TimmNet"]

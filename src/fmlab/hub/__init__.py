"""Models from the ecosystem built from fmlab's configs like its own nets (timm; Hugging Face
models), fmlab's GPT as Hugging Face's GPT-2, and LoRA adapters. timm, transformers and peft are
imported only inside functions: fmlab-train --help and every run that uses none of them load none.
"""

from fmlab.hub.models import HFCausalLM, HFMaskedLM, HFSequenceClassifier
from fmlab.hub.vision import TimmNet

__all__ = ["HFCausalLM", "HFMaskedLM", "HFSequenceClassifier", "TimmNet"]

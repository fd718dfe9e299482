"""The Hugging Face ecosystem: its models as fmlab nets, fmlab's GPT as its GPT-2, LoRA adapters.

The only modules that import transformers and peft, and only inside functions: fmlab-train
--help and every run that uses none of them load neither.
"""

from fmlab.hub.models import HFCausalLM, HFSequenceClassifier

__all__ = ["HFCausalLM", "HFSequenceClassifier"]

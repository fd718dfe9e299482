"""Hugging Face transformers models as plain fmlab nets: the same interfaces as fmlab's own, so
they train through fmlab's unchanged tasks."""

import torch
import torch.nn.functional as F
from torch import nn

from fmlab.errors import FmlabError
from fmlab.hub.loading import from_pretrained


class HFCausalLM(nn.Module):
    """Any ``AutoModelForCausalLM`` as ``forward(idx, targets=None) -> (logits, loss)``, like
    fmlab's GPT: targets are already the next tokens, so the loss is cross-entropy over every
    position (transformers' own ``labels=`` would shift them once more).

    ``name_or_path`` is a ``save_pretrained`` folder or a hub id. ``vocab_size`` and
    ``block_size`` come from the data, whose tokenizer must be the model's own
    (``data.tokenizer=hf:<name_or_path>``): its ids must fit the model's embedding.
    """

    def __init__(self, name_or_path: str, vocab_size: int, block_size: int) -> None:
        super().__init__()
        from transformers import AutoModelForCausalLM

        self.model = from_pretrained(AutoModelForCausalLM, name_or_path, "model.name_or_path")
        rows = self.model.get_input_embeddings().num_embeddings
        if vocab_size > rows:
            raise FmlabError(
                f"model.name_or_path={name_or_path!r} embeds {rows} token ids but the data's "
                f"tokenizer has {vocab_size}. Tokenise with the model's own tokenizer: "
                f"data.tokenizer=hf:{name_or_path}."
            )
        positions = getattr(self.model.config, "max_position_embeddings", None)
        if positions is not None and block_size > positions:
            raise FmlabError(
                f"data.block_size={block_size} is longer than the {positions} positions "
                f"model.name_or_path={name_or_path!r} was made for; set "
                f"data.block_size<={positions}."
            )
        self.name_or_path, self.vocab_size, self.block_size = name_or_path, vocab_size, block_size

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        logits = self.model(input_ids=idx, use_cache=False).logits  # (B, T, model's vocabulary)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.reshape(-1))
        return logits[..., : self.vocab_size], loss  # (B, T, vocab_size): the tokenizer's ids

"""Hugging Face transformers models as plain fmlab nets: the same interfaces as fmlab's own, so
they train through fmlab's unchanged tasks."""

import torch
import torch.nn.functional as F
from torch import nn

from fmlab.errors import FmlabError
from fmlab.run.pretrained import from_pretrained


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
        check_vocabulary(self.model, vocab_size, name_or_path)
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


class HFSequenceClassifier(nn.Module):
    """Any ``AutoModelForSequenceClassification`` as ``forward(idx) -> (B, num_classes)`` logits,
    like fmlab's SequenceClassifier: idx (B, T) padded on the right with ``pad_id``.

    fmlab's labelled text pads with ``pad_id``: an id past the tokenizer's, or the tokenizer's
    own [PAD] when it names BERT's special tokens (the text is then framed by its [CLS] and
    [SEP]); the model is given its own padding id there and an attention mask. A model with no
    padding id (GPT-2) pads with its end-of-sequence id, which its classifier also reads to find
    each text's last token. A head of another number of classes than the data's is made anew
    (``ignore_mismatched_sizes``).
    """

    def __init__(self, name_or_path: str, num_classes: int, pad_id: int) -> None:
        super().__init__()
        from transformers import AutoModelForSequenceClassification

        self.model = from_pretrained(
            AutoModelForSequenceClassification,
            name_or_path,
            "model.name_or_path",
            num_labels=num_classes,
            ignore_mismatched_sizes=True,
        )
        config = self.model.config
        if config.pad_token_id is None:
            config.pad_token_id = config.eos_token_id if config.eos_token_id is not None else 0
        rows = self.model.get_input_embeddings().num_embeddings
        if pad_id > rows:  # pad_id is one past the data tokenizer's last id
            raise FmlabError(
                f"model.name_or_path={name_or_path!r} embeds {rows} token ids but the data's "
                f"tokenizer has {pad_id}. Tokenise with the model's own tokenizer: "
                f"data.tokenizer=hf:{name_or_path}."
            )
        self.name_or_path, self.num_classes, self.pad_id = name_or_path, num_classes, pad_id

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        real = idx != self.pad_id  # (B, T)
        ids = idx.masked_fill(~real, self.model.config.pad_token_id)
        return self.model(input_ids=ids, attention_mask=real.long()).logits  # (B, num_classes)


class HFMaskedLM(nn.Module):
    """Any ``AutoModelForMaskedLM`` as task=masked_lm takes fmlab's Bert: ``encode(idx)`` and
    ``mlm_logits(encoded, positions) -> (N, vocab_size)``; idx (B, T) padded on the right with
    ``pad_id``, which the attention mask leaves out.

    ``encode`` gives the head's vocabulary logits at every position (B, T, model's vocabulary),
    not hidden states: transformers' masked-LM heads are no one module across families (BERT's
    ``cls``, RoBERTa's ``lm_head``, DistilBERT's four layers), so the head runs inside the model
    and ``mlm_logits`` picks the chosen rows. ``vocab_size`` and ``pad_id`` come from the data,
    whose tokenizer must be the model's own (``data.tokenizer=hf:<name_or_path>``) and name
    BERT's special tokens, which the task masks with.
    """

    def __init__(self, name_or_path: str, vocab_size: int, pad_id: int) -> None:
        super().__init__()
        from transformers import AutoModelForMaskedLM

        self.model = from_pretrained(AutoModelForMaskedLM, name_or_path, "model.name_or_path")
        check_vocabulary(self.model, vocab_size, name_or_path)
        self.name_or_path, self.vocab_size, self.pad_id = name_or_path, vocab_size, pad_id

    def encode(self, idx: torch.Tensor) -> torch.Tensor:
        real = idx != self.pad_id  # (B, T)
        return self.model(input_ids=idx, attention_mask=real.long()).logits  # (B, T, vocab)

    def mlm_logits(self, encoded_or_idx: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits (N, vocab_size) at the N True entries of ``positions`` (B, T), in
        row-major order; only the tokenizer's ids (a model may embed more)."""
        encoded = encoded_or_idx
        if not encoded.is_floating_point():
            encoded = self.encode(encoded_or_idx)
        return encoded[positions][:, : self.vocab_size]  # (N, vocab_size)


def check_vocabulary(model, vocab_size: int, name_or_path: str) -> None:
    """The data's token ids must fit the model's embedding: its tokenizer must be the model's."""
    rows = model.get_input_embeddings().num_embeddings
    if vocab_size > rows:
        raise FmlabError(
            f"model.name_or_path={name_or_path!r} embeds {rows} token ids but the data's "
            f"tokenizer has {vocab_size}. Tokenise with the model's own tokenizer: "
            f"data.tokenizer=hf:{name_or_path}."
        )

"""Labelled text as tensors: the tokenizer that reads it (``char``, ``bpe`` or ``wordpiece``
trained on the training texts, a Hugging Face model's own, or a checkpoint's) and each split's
examples encoded once into padded ids with their lengths and class indices (``TrimmedBatches``):
``[CLS] text [SEP]`` (pairs ``[CLS] a [SEP] b [SEP]``) with a tokenizer that has BERT's special
tokens, else the text alone padded with an id past the tokenizer's.
"""

import torch

from fmlab.data.batches import TrimmedBatches
from fmlab.data.labelled_files import Example
from fmlab.data.sequences import encode_with_specials, pad_right
from fmlab.data.tokenizers import (
    SPECIAL_TOKENS,
    BPETokenizer,
    CharTokenizer,
    HFTokenizer,
    WithSpecials,
    WordPieceTokenizer,
    tokenizer_from_dict,
)
from fmlab.errors import FmlabError

TRAINED = ("char", "bpe", "wordpiece")  # tokenizers trained on the training texts


def has_specials(tokenizer) -> bool:
    """Whether ``tokenizer`` names [PAD], [UNK], [CLS], [SEP] and [MASK] (``special_ids``)."""
    return hasattr(tokenizer, "special_ids")


def labelled_tokenizer(name: str, vocab_size: int, texts: list[str], given: dict | None = None):
    """The tokenizer ``data.tokenizer=name`` gives: ``given`` (a checkpoint's) when there is one,
    else a Hugging Face model's own, else one trained on the training ``texts``."""
    if given:
        return tokenizer_from_dict(given)
    if name.startswith("hf:"):
        return HFTokenizer.load(name[3:])
    if name == "char":  # data.vocab_size does not apply: one id per character
        return WithSpecials(CharTokenizer.train("".join(texts)))
    if name == "bpe":  # vocab_size counts the special tokens, as WordPiece's
        return WithSpecials(BPETokenizer.train(texts, vocab_size - len(SPECIAL_TOKENS)))
    return WordPieceTokenizer.train(texts, vocab_size)


def encode_examples(
    tokenizer, name: str, examples: list[Example], classes: list[str], max_length: int
) -> TrimmedBatches:
    """``examples`` as padded ids cut to ``max_length``, their lengths and class indices;
    ``name`` is the ``data.tokenizer`` setting, for the error message."""
    texts = [[pair[i] for _, pair in examples] for i in range(len(examples[0][1]))]
    if has_specials(tokenizer):
        ids, lengths = encode_with_specials(tokenizer, texts, max_length)
    elif len(texts) > 1:
        raise FmlabError(
            f"data.tokenizer={name} has no [SEP] of fmlab's to join a "
            "sentence pair: use data.tokenizer=char, bpe or wordpiece."
        )
    else:  # hf, or plain char from older checkpoints: the text alone, an id past them pads
        encoded = tokenizer.encode_batch(texts[0])
        ids, lengths = pad_right(encoded, max_length, pad=tokenizer.vocab_size)
    index = {c: i for i, c in enumerate(classes)}
    labels = torch.tensor([index[label] for label, _ in examples])
    return TrimmedBatches(ids, lengths, labels)

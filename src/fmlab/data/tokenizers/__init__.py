"""Tokenizers that serialise to primitive data, so a checkpoint carries the exact one it used.

Character, byte-level BPE (GPT-2's) and WordPiece (BERT's); for BERT-style data, char and BPE are
wrapped in ``WithSpecials`` so that every scheme has ``[PAD] [UNK] [CLS] [SEP] [MASK]`` at 0..4.

``to_dict()`` gives strings and ints only (it goes into checkpoints loaded with
``weights_only=True``); ``tokenizer_from_dict`` rebuilds the same tokenizer anywhere.
"""

from fmlab.data.tokenizers.bpe import BPETokenizer, HFTokenizer
from fmlab.data.tokenizers.char import EOT, UNKNOWN, CharTokenizer
from fmlab.data.tokenizers.wordpiece import (
    SPECIAL_IDS,
    SPECIAL_TOKENS,
    WithSpecials,
    WordPieceTokenizer,
)

__all__ = [
    "EOT",
    "SPECIAL_IDS",
    "SPECIAL_TOKENS",
    "UNKNOWN",
    "BPETokenizer",
    "CharTokenizer",
    "HFTokenizer",
    "WithSpecials",
    "WordPieceTokenizer",
]


def tokenizer_from_dict(data: dict):
    if data["kind"] == "specials":
        return WithSpecials(tokenizer_from_dict(data["base"]))
    if data["kind"] == "wordpiece":
        from tokenizers import Tokenizer

        return WordPieceTokenizer(Tokenizer.from_str(data["json"]))
    if data["kind"] == "char":
        return CharTokenizer(data["chars"], data.get("eot", False))
    if data["kind"] == "bpe":
        from tokenizers import Tokenizer

        return BPETokenizer(Tokenizer.from_str(data["json"]))
    if data["kind"] == "hf":
        from tokenizers import Tokenizer

        backend = Tokenizer.from_str(data["json"])
        return HFTokenizer(backend, data["name_or_path"], data["eos_token"], data.get("specials"))
    if data["kind"] == "tiktoken":
        from fmlab.data.tokenizers.gpt2_bpe import TiktokenTokenizer

        return TiktokenTokenizer.from_dict(data)
    raise ValueError(f"unknown tokenizer kind {data['kind']!r}")


def saved_state(checkpoint: dict) -> dict | None:
    """The state of the data module that holds a tokenizer, as an fmlab-train checkpoint keeps
    it (Lightning stores it under the data module's class name), or None."""
    return next(
        (v for v in checkpoint.values() if isinstance(v, dict) and v.get("tokenizer")), None
    )


def saved_tokenizer(checkpoint: dict):
    """The tokenizer a checkpoint's net was trained to read, or None (an image model)."""
    state = saved_state(checkpoint)
    return tokenizer_from_dict(state["tokenizer"]) if state else None


def base_kind(data: dict) -> str:
    """char, bpe, wordpiece, hf, ...: the scheme of a tokenizer dict, inside any WithSpecials."""
    return base_kind(data["base"]) if data["kind"] == "specials" else data["kind"]

"""Byte-level BPE (GPT-2's scheme), trained here or a Hugging Face model's own tokenizer."""

import numpy as np

from fmlab.data.tokenizers.char import EOT
from fmlab.data.tokenizers.wordpiece import SPECIAL_IDS


class BPETokenizer:
    """Byte-level BPE (GPT-2's scheme) from the ``tokenizers`` library: any text, no unknowns."""

    kind = "bpe"

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer

    @classmethod
    def train(
        cls, text, vocab_size: int, min_frequency: int = 2, eot: bool = False
    ) -> "BPETokenizer":
        """From a text, or an iterator of texts (streamed: a corpus need not fit in memory)."""
        from tokenizers import ByteLevelBPETokenizer

        tokenizer = ByteLevelBPETokenizer()
        texts = _chunks(text) if isinstance(text, str) else (c for t in text for c in _chunks(t))
        tokenizer.train_from_iterator(
            texts,
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            show_progress=False,
            special_tokens=[EOT] if eot else [],  # id 0 when present
        )
        return cls(tokenizer)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    @property
    def eot_id(self) -> int | None:
        return self.tokenizer.token_to_id(EOT)

    def encode(self, text: str) -> np.ndarray:
        return self.encode_batch([text])[0]

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        # Encoded in chunks of whole lines (in parallel by the library); no token spans two chunks.
        chunks = [list(_chunks(t)) for t in texts]
        # No special tokens: a template that adds BOS/EOS (many hub tokenizers) would add them to
        # every chunk; documents are separated by eot_id where the store asks for it.
        pieces = [c for cs in chunks for c in cs]
        encodings = iter(self.tokenizer.encode_batch(pieces, add_special_tokens=False))
        out = []
        for cs in chunks:
            ids = [np.asarray(next(encodings).ids, dtype=np.int64) for _ in cs]
            out.append(np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64))
        return out

    def decode(self, ids) -> str:
        return self.tokenizer.decode([int(i) for i in ids])

    def to_dict(self) -> dict:
        return {"kind": self.kind, "json": self.tokenizer.to_str()}


class HFTokenizer(BPETokenizer):
    """A Hugging Face model's own fast tokenizer (``data.tokenizer=hf:<name_or_path>``), kept as
    its ``tokenizer.json`` text: a checkpoint decodes without the folder or the hub. Its
    end-of-text id is the model's end-of-sequence token.

    A tokenizer that names all of BERT's special tokens (pad, unk, cls, sep and mask: BERT's,
    RoBERTa's) has ``special_ids``, at whatever ids it holds them: labelled text is then read as
    ``[CLS] text [SEP]`` padded with its ``[PAD]``, and a masked-LM task masks with its
    ``[MASK]``. Others (GPT-2's) have none."""

    kind = "hf"

    def __init__(
        self, tokenizer, name_or_path: str, eos_token: str | None, specials: dict | None = None
    ) -> None:
        super().__init__(tokenizer)
        self.name_or_path, self.eos_token, self.specials = name_or_path, eos_token, specials
        if specials:  # {"pad": "[PAD]", ...}: only then has it special_ids (data reads hasattr)
            self.special_ids = {name: tokenizer.token_to_id(t) for name, t in specials.items()}

    @classmethod
    def load(cls, name_or_path: str) -> "HFTokenizer":
        from transformers import AutoTokenizer

        from fmlab.errors import FmlabError
        from fmlab.run.pretrained import from_pretrained

        loaded = from_pretrained(AutoTokenizer, name_or_path, "data.tokenizer", prefix="hf:")
        backend = getattr(loaded, "backend_tokenizer", None)
        if backend is None:
            raise FmlabError(
                f"data.tokenizer=hf:{name_or_path} is a {type(loaded).__name__}, a slow tokenizer "
                "with no tokenizer.json; fmlab stores only fast ones. Save the model's fast "
                "tokenizer (AutoTokenizer.from_pretrained(..., use_fast=True).save_pretrained)."
            )
        backend.no_truncation()
        backend.no_padding()
        specials = {name: getattr(loaded, f"{name}_token", None) for name in SPECIAL_IDS}
        complete = all(backend.token_to_id(t) is not None for t in specials.values() if t)
        complete = complete and all(specials.values())
        return cls(backend, name_or_path, loaded.eos_token, specials if complete else None)

    @property
    def eot_id(self) -> int | None:
        return self.tokenizer.token_to_id(self.eos_token) if self.eos_token else None

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "name_or_path": self.name_or_path,
            "eos_token": self.eos_token,
            "json": self.tokenizer.to_str(),
            # Only when set: the dicts of older checkpoints (and GPT-2's) stay equal.
            **({"specials": self.specials} if self.specials else {}),
        }


# BERT's special tokens, at ids 0..4 of every tokenizer that has them (WordPiece, and char or BPE


def _chunks(text: str, lines: int = 1000):
    """Pieces of ``text`` of ``lines`` whole lines each (line ends kept), concatenating to it."""
    split = text.splitlines(keepends=True)
    for i in range(0, len(split), lines):
        yield "".join(split[i : i + lines])

"""WordPiece (BERT's scheme), and BERT's five special tokens at ids 0..4 of every scheme."""

import numpy as np

# BERT's special tokens, at ids 0..4 of every tokenizer that has them (WordPiece, and char or BPE
# through WithSpecials): a net or a masking task finds them at the same ids whatever the scheme.
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
SPECIAL_IDS = {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}


class WordPieceTokenizer:
    """BERT's WordPiece (Devlin et al. 2019): lower-cased, split at spaces and punctuation, words
    cut into pieces of a vocabulary learnt from the training text (``##`` marks a word's inner
    pieces); a word it cannot cut is ``[UNK]``. The special tokens are ids 0..4."""

    kind = "wordpiece"
    special_ids = SPECIAL_IDS

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        if [tokenizer.token_to_id(t) for t in SPECIAL_TOKENS] != list(range(len(SPECIAL_TOKENS))):
            raise ValueError(f"a WordPiece tokenizer must hold {SPECIAL_TOKENS} at ids 0..4")

    @classmethod
    def train(cls, texts, vocab_size: int = 8000, min_frequency: int = 2) -> "WordPieceTokenizer":
        """From an iterable of texts (streamed by the library)."""
        from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

        tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=list(SPECIAL_TOKENS),  # ids 0..4, in this order
            show_progress=False,
        )
        tokenizer.train_from_iterator(texts, trainer=trainer)
        return cls(tokenizer)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def encode(self, text: str) -> np.ndarray:
        return self.encode_batch([text])[0]

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        # No [CLS]/[SEP] here: the data adds them where a sequence starts and ends.
        encodings = self.tokenizer.encode_batch(texts, add_special_tokens=False)
        return [np.asarray(e.ids, dtype=np.int64) for e in encodings]

    def decode(self, ids) -> str:
        return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=True)

    @property
    def continuation_ids(self) -> list[int]:
        """The ``##`` pieces, which continue a word: whole-word masking masks them with it."""
        return sorted(
            i for token, i in self.tokenizer.get_vocab().items() if token.startswith("##")
        )

    def to_dict(self) -> dict:
        return {"kind": self.kind, "json": self.tokenizer.to_str()}


class WithSpecials:
    """A char or BPE tokenizer with the special tokens at ids 0..4 and its own ids shifted past
    them. A character the char vocabulary lacks is ``[UNK]`` (and decodes to U+FFFD as before);
    decoding drops the other special tokens. Plain char dicts of older checkpoints (no wrapper)
    still load as plain CharTokenizers: their data pads with an id past the vocabulary."""

    kind = "specials"
    special_ids = SPECIAL_IDS

    def __init__(self, base) -> None:
        self.base = base
        self._unknown = getattr(base, "unknown_id", None)  # char's; byte-level BPE has none

    @property
    def vocab_size(self) -> int:
        return len(SPECIAL_TOKENS) + self.base.vocab_size

    def encode(self, text: str) -> np.ndarray:
        return self._shift(self.base.encode(text))

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        return [self._shift(ids) for ids in self.base.encode_batch(texts)]

    def _shift(self, ids: np.ndarray) -> np.ndarray:
        shifted = ids.astype(np.int64) + len(SPECIAL_TOKENS)
        if self._unknown is not None:
            shifted[ids == self._unknown] = SPECIAL_IDS["unk"]
        return shifted

    def decode(self, ids) -> str:
        ids = np.asarray(ids, dtype=np.int64)
        if self._unknown is not None:
            ids = np.where(ids == SPECIAL_IDS["unk"], self._unknown + len(SPECIAL_TOKENS), ids)
        return self.base.decode(ids[ids >= len(SPECIAL_TOKENS)] - len(SPECIAL_TOKENS))

    def to_dict(self) -> dict:
        return {"kind": self.kind, "base": self.base.to_dict()}

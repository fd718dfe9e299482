"""Tokenizers that serialise to primitive data, so a checkpoint carries the exact one it used.

``to_dict()`` gives strings and ints only (it goes into checkpoints loaded with
``weights_only=True``); ``tokenizer_from_dict`` rebuilds the same tokenizer anywhere.
"""

import numpy as np

UNKNOWN = "\ufffd"  # what an unknown character decodes to (U+FFFD, the replacement character)


class CharTokenizer:
    """One id per Unicode character of the training text, plus one last id for characters the
    training text never showed (they decode to U+FFFD)."""

    kind = "char"

    def __init__(self, chars: str) -> None:
        self.chars = chars
        self.codes = np.array([ord(c) for c in chars], dtype=np.uint32)  # sorted code points
        if len(self.codes) and np.any(np.diff(self.codes.astype(np.int64)) <= 0):
            raise ValueError("chars must be sorted and unique")
        self.unknown_id = len(chars)
        self._table = np.array([*chars, UNKNOWN])

    @classmethod
    def train(cls, text: str) -> "CharTokenizer":
        return cls("".join(sorted(set(text))))

    @property
    def vocab_size(self) -> int:
        return len(self.chars) + 1

    def encode(self, text: str) -> np.ndarray:
        # Vectorised over code points: a 100 MB corpus encodes in seconds, not minutes.
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        ids = np.searchsorted(self.codes, codes)
        ids = np.minimum(ids, max(len(self.codes) - 1, 0))
        known = self.codes[ids] == codes if len(self.codes) else np.zeros(len(codes), bool)
        return np.where(known, ids, self.unknown_id).astype(np.int64)

    def decode(self, ids) -> str:
        return "".join(self._table[np.asarray(ids, dtype=np.int64)])

    def to_dict(self) -> dict:
        return {"kind": self.kind, "chars": self.chars}


class BPETokenizer:
    """Byte-level BPE (GPT-2's scheme) from the ``tokenizers`` library: any text, no unknowns."""

    kind = "bpe"

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer

    @classmethod
    def train(cls, text: str, vocab_size: int, min_frequency: int = 2) -> "BPETokenizer":
        from tokenizers import ByteLevelBPETokenizer

        tokenizer = ByteLevelBPETokenizer()
        tokenizer.train_from_iterator(
            _chunks(text), vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False
        )
        return cls(tokenizer)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def encode(self, text: str) -> np.ndarray:
        # Encoded in chunks of whole lines (in parallel by the library); no token spans two chunks.
        encodings = self.tokenizer.encode_batch(list(_chunks(text)))
        ids = [np.asarray(e.ids, dtype=np.int64) for e in encodings]
        return np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)

    def decode(self, ids) -> str:
        return self.tokenizer.decode([int(i) for i in ids])

    def to_dict(self) -> dict:
        return {"kind": self.kind, "json": self.tokenizer.to_str()}


def _chunks(text: str, lines: int = 1000):
    """Pieces of ``text`` of ``lines`` whole lines each (line ends kept), concatenating to it."""
    split = text.splitlines(keepends=True)
    for i in range(0, len(split), lines):
        yield "".join(split[i : i + lines])


def tokenizer_from_dict(data: dict):
    if data["kind"] == "char":
        return CharTokenizer(data["chars"])
    if data["kind"] == "bpe":
        from tokenizers import Tokenizer

        return BPETokenizer(Tokenizer.from_str(data["json"]))
    raise ValueError(f"unknown tokenizer kind {data['kind']!r}")

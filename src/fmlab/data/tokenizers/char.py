"""Characters as tokens (nanoGPT's shakespeare_char), with GPT-2's end-of-text token optional."""

import numpy as np

UNKNOWN = "\ufffd"  # what an unknown character decodes to (U+FFFD, the replacement character)


EOT = "<|endoftext|>"  # GPT-2's end-of-text token: separates the documents of a corpus


class CharTokenizer:
    """One id per Unicode character of the training text, plus one id for characters the training
    text never showed (they decode to U+FFFD), plus, for corpora of many documents, an end-of-text
    id after the unknown one (it decodes to ``<|endoftext|>``)."""

    kind = "char"

    def __init__(self, chars: str, eot: bool = False) -> None:
        self.chars, self.eot = chars, eot
        self.codes = np.array([ord(c) for c in chars], dtype=np.uint32)  # sorted code points
        if len(self.codes) and np.any(np.diff(self.codes.astype(np.int64)) <= 0):
            raise ValueError("chars must be sorted and unique")
        self.unknown_id = len(chars)
        self._table = np.array([*chars, UNKNOWN, *([EOT] if eot else [])])

    @classmethod
    def train(cls, text: str, eot: bool = False) -> "CharTokenizer":
        return cls("".join(sorted(set(text))), eot)

    @property
    def vocab_size(self) -> int:
        return len(self.chars) + 1 + self.eot

    @property
    def eot_id(self) -> int | None:
        return self.unknown_id + 1 if self.eot else None

    def encode(self, text: str) -> np.ndarray:
        # Vectorised over code points: one gather from a table indexed by code point (the last
        # entry, past the highest known one, is the unknown id).
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        return self._lookup[np.minimum(codes, len(self._lookup) - 1)]

    @property
    def _lookup(self) -> np.ndarray:
        if not hasattr(self, "_table_by_code"):
            top = int(self.codes.max()) + 1 if len(self.codes) else 0
            self._table_by_code = np.full(top + 1, self.unknown_id, dtype=np.int64)
            self._table_by_code[self.codes] = np.arange(len(self.codes))
        return self._table_by_code

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        # One id per character: encode the texts as one and cut the ids at their lengths.
        ids = self.encode("".join(texts))
        return np.split(ids, np.cumsum([len(t) for t in texts[:-1]]).astype(np.int64))

    def decode(self, ids) -> str:
        return "".join(self._table[np.asarray(ids, dtype=np.int64)])

    def to_dict(self) -> dict:
        # "eot" only when set: the dicts of older checkpoints ({"kind", "chars"}) stay equal.
        return {"kind": self.kind, "chars": self.chars, **({"eot": True} if self.eot else {})}

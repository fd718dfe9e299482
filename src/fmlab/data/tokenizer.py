"""Tokenizers that serialise to primitive data, so a checkpoint carries the exact one it used.

``to_dict()`` gives strings and ints only (it goes into checkpoints loaded with
``weights_only=True``); ``tokenizer_from_dict`` rebuilds the same tokenizer anywhere.
"""

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
    end-of-text id is the model's end-of-sequence token."""

    kind = "hf"

    def __init__(self, tokenizer, name_or_path: str, eos_token: str | None) -> None:
        super().__init__(tokenizer)
        self.name_or_path, self.eos_token = name_or_path, eos_token

    @classmethod
    def load(cls, name_or_path: str) -> "HFTokenizer":
        from transformers import AutoTokenizer

        from fmlab.errors import FmlabError
        from fmlab.hub.loading import from_pretrained

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
        return cls(backend, name_or_path, loaded.eos_token)

    @property
    def eot_id(self) -> int | None:
        return self.tokenizer.token_to_id(self.eos_token) if self.eos_token else None

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "name_or_path": self.name_or_path,
            "eos_token": self.eos_token,
            "json": self.tokenizer.to_str(),
        }


def _chunks(text: str, lines: int = 1000):
    """Pieces of ``text`` of ``lines`` whole lines each (line ends kept), concatenating to it."""
    split = text.splitlines(keepends=True)
    for i in range(0, len(split), lines):
        yield "".join(split[i : i + lines])


def tokenizer_from_dict(data: dict):
    if data["kind"] == "char":
        return CharTokenizer(data["chars"], data.get("eot", False))
    if data["kind"] == "bpe":
        from tokenizers import Tokenizer

        return BPETokenizer(Tokenizer.from_str(data["json"]))
    if data["kind"] == "hf":
        from tokenizers import Tokenizer

        backend = Tokenizer.from_str(data["json"])
        return HFTokenizer(backend, data["name_or_path"], data["eos_token"])
    if data["kind"] == "tiktoken":
        from fmlab.data.gpt2_bpe import TiktokenTokenizer

        return TiktokenTokenizer.from_dict(data)
    raise ValueError(f"unknown tokenizer kind {data['kind']!r}")

"""Tokenizers that serialise to primitive data, so a checkpoint carries the exact one it used.

Character, byte-level BPE (GPT-2's) and WordPiece (BERT's); for BERT-style data, char and BPE are
wrapped in ``WithSpecials`` so that every scheme has ``[PAD] [UNK] [CLS] [SEP] [MASK]`` at 0..4.

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


def _chunks(text: str, lines: int = 1000):
    """Pieces of ``text`` of ``lines`` whole lines each (line ends kept), concatenating to it."""
    split = text.splitlines(keepends=True)
    for i in range(0, len(split), lines):
        yield "".join(split[i : i + lines])


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


def base_kind(data: dict) -> str:
    """char, bpe, wordpiece, hf, ...: the scheme of a tokenizer dict, inside any WithSpecials."""
    return base_kind(data["base"]) if data["kind"] == "specials" else data["kind"]

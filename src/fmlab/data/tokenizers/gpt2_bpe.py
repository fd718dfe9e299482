"""GPT-2's byte-level BPE through ``tiktoken`` (nanoGPT's tokenizer for OpenWebText).

The merge ranks come from a local file (``data.tokenizer_file``: a ``.tiktoken`` file, or GPT-2's
``vocab.bpe`` + ``encoder.json``) or, online, from ``tiktoken.get_encoding("gpt2")``. ``to_dict``
carries the ranks themselves (``.tiktoken`` text: base64 token and rank per line), so a checkpoint
rebuilds the tokenizer with no file and no network.
"""

import base64
import hashlib
import os
from pathlib import Path

import numpy as np

from fmlab.data.tokenizers.char import EOT
from fmlab.errors import FmlabError

# tiktoken_ext/openai_public.py: GPT-2's pre-tokenisation pattern and its one special token.
GPT2_PATTERN = (
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
)
GPT2_EOT_ID = 50256
GPT2_URL = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main"


class TiktokenTokenizer:
    """Byte-level BPE of given merge ranks; ``<|endoftext|>`` is the id after the last rank
    (50256 for GPT-2's 50,256 ranks)."""

    kind = "tiktoken"

    def __init__(self, ranks: dict[bytes, int], pattern: str = GPT2_PATTERN) -> None:
        import tiktoken

        self.ranks, self.pattern = ranks, pattern
        self.eot_id = max(ranks.values()) + 1
        self.encoding = tiktoken.Encoding(
            "fmlab", pat_str=pattern, mergeable_ranks=ranks, special_tokens={EOT: self.eot_id}
        )

    @classmethod
    def load(cls, tokenizer_file: str | None) -> "TiktokenTokenizer":
        """From ``tokenizer_file`` when given, else GPT-2's from tiktoken's download."""
        if tokenizer_file:
            return cls(_read_ranks(Path(tokenizer_file).expanduser()))
        try:
            import tiktoken

            gpt2 = tiktoken.get_encoding("gpt2")
        except Exception as err:  # no network, no cached copy: say what to place where
            raise FmlabError(
                f"data.tokenizer=tiktoken needs GPT-2's BPE files and could not download them "
                f"({type(err).__name__}: {err}). Download {GPT2_URL}/vocab.bpe and "
                f"{GPT2_URL}/encoder.json into one folder and set data.tokenizer_file=<that "
                "folder> (or give a .tiktoken file)."
            ) from None
        return cls(gpt2._mergeable_ranks, gpt2._pat_str)

    @property
    def vocab_size(self) -> int:
        return self.eot_id + 1

    def encode(self, text: str) -> np.ndarray:
        # encode_ordinary: a literal "<|endoftext|>" in the text is text, not a separator.
        return np.asarray(self.encoding.encode_ordinary(text), dtype=np.int64)

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        return [self.encode(t) for t in texts]

    def decode(self, ids) -> str:
        return self.encoding.decode([int(i) for i in ids])

    def to_dict(self) -> dict:
        lines = (f"{base64.b64encode(t).decode()} {r}" for t, r in sorted_ranks(self.ranks))
        return {"kind": self.kind, "pattern": self.pattern, "ranks": "\n".join(lines)}

    @classmethod
    def from_dict(cls, data: dict) -> "TiktokenTokenizer":
        return cls(_parse_tiktoken(data["ranks"]), data["pattern"])


def sorted_ranks(ranks: dict[bytes, int]) -> list[tuple[bytes, int]]:
    return sorted(ranks.items(), key=lambda item: item[1])


def file_sha256(tokenizer_file: str) -> str:
    """What names the ranks in a store's key: the file's bytes (both files of a folder)."""
    path = Path(tokenizer_file).expanduser()
    digest = hashlib.sha256()
    for part in _data_gym_files(path) if path.is_dir() else [path]:
        digest.update(part.read_bytes())
    return digest.hexdigest()


def _read_ranks(path: Path) -> dict[bytes, int]:
    if path.is_dir() or path.name in ("vocab.bpe", "encoder.json"):
        vocab, encoder = _data_gym_files(path if path.is_dir() else path.parent)
        from tiktoken.load import data_gym_to_mergeable_bpe_ranks

        cache = os.environ.get("TIKTOKEN_CACHE_DIR")
        os.environ["TIKTOKEN_CACHE_DIR"] = ""  # read the files as they are now, no copy in /tmp
        try:
            return data_gym_to_mergeable_bpe_ranks(str(vocab), str(encoder))
        except (AssertionError, ValueError, KeyError) as err:
            raise FmlabError(
                f"data.tokenizer_file: {vocab} and {encoder} do not belong together or are not "
                f"GPT-2's format ({type(err).__name__}). Download both again from {GPT2_URL}/."
            ) from None
        finally:
            os.environ.pop("TIKTOKEN_CACHE_DIR")
            if cache is not None:
                os.environ["TIKTOKEN_CACHE_DIR"] = cache
    if not path.is_file():
        raise FmlabError(
            f"data.tokenizer_file={str(path)!r} does not exist. Give a .tiktoken file, or the "
            f"folder holding GPT-2's vocab.bpe and encoder.json (from {GPT2_URL}/)."
        )
    try:
        return _parse_tiktoken(path.read_text(encoding="ascii"))
    except (ValueError, UnicodeDecodeError):
        raise FmlabError(
            f"data.tokenizer_file={str(path)!r} is not a .tiktoken file (a base64 token and its "
            "rank on every line). Give a .tiktoken file, or the folder holding GPT-2's vocab.bpe "
            f"and encoder.json (from {GPT2_URL}/)."
        ) from None


def _data_gym_files(folder: Path) -> tuple[Path, Path]:
    vocab, encoder = folder / "vocab.bpe", folder / "encoder.json"
    missing = [p.name for p in (vocab, encoder) if not p.is_file()]
    if missing:
        raise FmlabError(
            f"data.tokenizer_file={str(folder)!r} lacks {' and '.join(missing)}. Download "
            f"{GPT2_URL}/vocab.bpe and {GPT2_URL}/encoder.json into {folder}/."
        )
    return vocab, encoder


def _parse_tiktoken(text: str) -> dict[bytes, int]:
    ranks = {}
    for line in text.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token, validate=True)] = int(rank)
    if not ranks:
        raise ValueError("no ranks")
    return ranks

"""Text corpora for language models: prepared once into a token store on disk (``fmlab-prepare``,
or the first run on the corpus), served as windows straight from its memory maps, so a corpus
larger than memory trains as a small one does.

Training batches are ``batch_size`` random windows of ``block_size + 1`` tokens, cut from the
training split in one gather (nanoGPT's ``get_batch``). Validation and test cover their split
deterministically with non-overlapping windows: every position is scored once, with the same mix
of context lengths (0 … block_size - 1) as nanoGPT's random windows, so the mean loss has the same
meaning as nanoGPT's ``estimate_loss`` without its sampling noise. A split too large to score
whole at every validation is scored on ``max_eval_windows`` of them, evenly spread and the same
every time; ``fmlab-eval`` scores it whole.
"""

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Annotated, Literal

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from fmlab.config.constraints import AT_LEAST_ONE, FRACTION, Range
from fmlab.data.batches import BatchIndices
from fmlab.data.corpora import CORPORA
from fmlab.data.prepare import PrepareSpec, check_tokenizer, ensure_store
from fmlab.data.store import Tokens, open_store
from fmlab.data.tokenizers import SPECIAL_IDS, SPECIAL_TOKENS, WithSpecials
from fmlab.data.windows import RandomWindows, WindowLoader, Windows
from fmlab.errors import FmlabError

log = logging.getLogger(__name__)

TINY_SHAKESPEARE_MD5 = "6fb458f1232090904fb40fe944165e91"


class TextDataModule(L.LightningDataModule):
    """A corpus (``tiny_shakespeare``, ``wikitext2``, ``wikitext103``, ``openwebtext``, the path of
    a text file, folder, glob, JSON Lines or Parquet file, or a prepared store: an fmlab-prepare
    folder or nanoGPT's ``train.bin``/``val.bin``), tokenised by ``char``, byte-level ``bpe`` or
    GPT-2's BPE (``tiktoken``). Corpora without official splits are cut by document, or for one
    long text by character position: the first part trains, then ``val_fraction``, then
    ``test_fraction`` (nanoGPT: 0.9 / 0.1)."""

    def __init__(
        self,
        data_dir: str = "data",
        corpus: str = "tiny_shakespeare",
        tokenizer: str = "char",  # char, bpe, tiktoken or hf:<name_or_path>
        bpe_vocab_size: Annotated[int, Range(ge=256)] = 4096,  # the 256 bytes, then merges
        bpe_train_chars: Annotated[int, AT_LEAST_ONE] = 200_000_000,
        tokenizer_file: str | None = None,
        block_size: Annotated[int, AT_LEAST_ONE] = 256,
        batch_size: Annotated[int, AT_LEAST_ONE] = 64,
        eval_batch_size: Annotated[int, AT_LEAST_ONE] = 64,
        max_eval_windows: Annotated[int, AT_LEAST_ONE] | None = None,
        val_fraction: Annotated[float, FRACTION] = 0.1,
        test_fraction: Annotated[float, FRACTION] = 0.0,
        seed: int = 0,
        cache_dir: str | None = None,
        download: bool = True,
        encoding: str = "utf-8",
        encoding_errors: Literal["strict", "replace", "ignore"] = "strict",
        text_field: str = "text",
        num_proc: Annotated[int, AT_LEAST_ONE] = 1,
        shard_tokens: Annotated[int, AT_LEAST_ONE] = 100_000_000,
        special_tokens: bool = False,
    ) -> None:
        super().__init__()
        check_tokenizer(tokenizer)
        self.data_dir, self.corpus, self.tokenizer_kind = (
            Path(data_dir).expanduser(),
            corpus,
            tokenizer,
        )
        # The arguments that define the store (fmlab-prepare reads the same keys); the rest serve.
        self.spec = PrepareSpec.from_config({**locals(), "data_dir": str(self.data_dir)})
        self.block_size, self.max_eval_windows = block_size, max_eval_windows
        self.special_tokens = special_tokens
        self.batch_size, self.eval_batch_size, self.seed = batch_size, eval_batch_size, seed
        self.store = None
        self.train_loader: WindowLoader | None = None
        self.tokenizer = None
        self.tokens: dict[str, Tokens] = {}  # split -> its tokens, memory-mapped
        self.tokens_per_char: dict[str, float] = {}
        self.record: dict = {}

    # ---- what the rest of fmlab reads -------------------------------------------------------
    @property
    def net_args(self) -> dict:
        self._load()
        if self.special_tokens:  # BERT's inputs: windows of one sequence each, no classes
            return {
                "vocab_size": self.store.vocab_size + len(SPECIAL_TOKENS),
                "num_classes": 0,
                "pad_id": SPECIAL_IDS["pad"],
                "max_length": self.block_size,
            }
        return {"vocab_size": self.store.vocab_size, "block_size": self.block_size}

    @property
    def special_ids(self) -> dict:
        """The ids of [PAD] [UNK] [CLS] [SEP] [MASK] (0..4), for task=masked_lm."""
        if not self.special_tokens:
            raise FmlabError(
                "task=masked_lm needs BERT's special tokens in the data: set "
                "data.special_tokens=true (each window becomes [CLS] tokens [SEP], the store's ids "
                "shifted past the five special ones)."
            )
        return dict(SPECIAL_IDS)

    @property
    def has_val(self) -> bool:
        self._load()
        return "val" in self.tokens

    @property
    def has_test(self) -> bool:
        self._load()
        return "test" in self.tokens

    def state_dict(self) -> dict:
        """Saved inside every checkpoint: sampling and evaluation reuse this exact tokenizer.
        With special tokens, also the tokenizer as the net saw it, for the labelled data of a
        fine-tuning run (fmlab.techniques.transfer.take_tokenizer)."""
        if not self.tokenizer:
            return {}
        with_specials = {"net_tokenizer": WithSpecials(self.tokenizer).to_dict()}
        return {
            "tokenizer": self.tokenizer.to_dict(),
            **(with_specials if self.special_tokens else {}),
        }

    def load_state_dict(self, state: dict) -> None:
        """Before the data is loaded (fmlab-eval): encode whatever corpus is configured with the
        checkpoint's tokenizer. After (a resumed fit): refuse data whose tokenizer differs."""
        if self.store is None and state.get("tokenizer"):
            self.spec.given_tokenizer = state["tokenizer"]
            return
        self._load()
        if state.get("tokenizer") and self.state_dict()["tokenizer"] != state["tokenizer"]:
            raise FmlabError(
                f"the checkpoint was trained with a different tokenizer than corpus "
                f"{self.corpus!r} with data.tokenizer={self.tokenizer_kind} builds now (the corpus "
                "or the tokenizer settings changed); use the data it was trained on."
            )

    # ---- Lightning hooks ----------------------------------------------------------------
    def prepare_data(self) -> None:
        ensure_store(self.spec)  # on rank 0 of each node (or once, on a shared filesystem)

    def setup(self, stage: str | None = None) -> None:
        self._load()
        if self.trainer is not None and self.tokenizer is not None:
            path = Path(self.trainer.default_root_dir) / "tokenizer.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(self.tokenizer.to_dict()))

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        windows = RandomWindows(
            self.tokens["train"], self.block_size, self.batch_size, self.seed, rank, world
        )
        self.train_loader = WindowLoader(windows, batch_size=None)
        return self.train_loader

    def val_dataloader(self) -> DataLoader | list:
        return self._eval_loader("val") if "val" in self.tokens else []

    def test_dataloader(self) -> DataLoader:
        if "test" not in self.tokens:
            raise FmlabError(
                f"corpus {self.corpus!r} has no test split here. Set test=false (the recipes on "
                "corpora without one do), or carve one with data.test_fraction=0.1."
            )
        return self._eval_loader("test")

    def on_after_batch_transfer(self, batch: torch.Tensor, dataloader_idx: int):
        if self.trainer is not None and self.trainer.training and self.train_loader is not None:
            self.train_loader.trained()
        batch = batch.long()  # (B, block_size + 1)
        if self.special_tokens:
            return self._with_specials(batch[:, : self.block_size - 2]), batch.new_zeros(len(batch))
        return batch[:, :-1], batch[:, 1:]  # inputs, next-token targets

    def _with_specials(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[CLS] tokens [SEP]`` (B, block_size), the ids as WithSpecials numbers them (the
        labelled data of a fine-tuning run reads text the same way). A window may span documents
        with the end-of-text id between them, as RoBERTa's FULL-SENTENCES inputs do."""
        ids = tokens + len(SPECIAL_TOKENS)
        if (unknown := getattr(self.tokenizer, "unknown_id", None)) is not None:
            ids[tokens == unknown] = SPECIAL_IDS["unk"]
        cls, sep = (torch.full_like(ids[:, :1], SPECIAL_IDS[k]) for k in ("cls", "sep"))
        return torch.cat([cls, ids, sep], 1)  # (B, block_size)

    # ---- loading --------------------------------------------------------------------------
    def _eval_loader(self, split: str) -> DataLoader:
        tokens = self.tokens[split]
        n = (len(tokens) - 1) // self.block_size
        if n < 1:
            raise FmlabError(
                f"the {split} split holds {len(tokens)} tokens, fewer than data.block_size + 1 = "
                f"{self.block_size + 1}. Use a larger corpus or fraction, or a smaller block_size."
            )
        windows = np.arange(n)
        if self.max_eval_windows and n > self.max_eval_windows:
            # Evenly spread over the split, the same ones at every validation and in every run.
            windows = np.linspace(0, n - 1, self.max_eval_windows).round().astype(np.int64)
            log.info(
                "%s: %d of its %d non-overlapping windows of %d tokens, evenly spread "
                "(data.max_eval_windows; fmlab-eval scores them all)",
                split,
                len(windows),
                n,
                self.block_size,
            )
        else:
            log.info(
                "%s: %d non-overlapping windows of %d tokens score all %d positions of the split "
                "once (deterministic; nanoGPT estimates this mean from eval_iters random batches)",
                split,
                n,
                self.block_size,
                n * self.block_size,
            )
        dataset = Windows(tokens, windows * self.block_size, self.block_size)
        sampler = BatchIndices(len(windows), self.eval_batch_size, shuffle=False)
        return DataLoader(dataset, batch_size=None, sampler=sampler)

    def _load(self) -> None:
        if self.store is not None:
            return
        folder = ensure_store(self.spec)
        try:
            store = open_store(folder)
        except FmlabError as err:
            if folder == Path(self.corpus).expanduser():
                raise  # the user's own store: theirs to mend
            # One fmlab prepared (a shard truncated since, a disk that filled): never train on
            # it; keep it aside for a look, and prepare the corpus again.
            aside = folder.with_name(f"{folder.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
            folder.rename(aside)
            log.warning("%s Moved it aside to %s; preparing the corpus again.", err, aside)
            store = open_store(ensure_store(self.spec))
        given = self.spec.given_tokenizer
        if given is not None and store.tokenizer is not None and store.tokenizer.to_dict() != given:
            raise FmlabError(
                f"data.corpus={self.corpus!r} is a store prepared with another tokenizer than the "
                "checkpoint's, and a store's ids cannot be re-encoded. Give the text itself as "
                "data.corpus (it is then prepared with the checkpoint's tokenizer)."
            )
        self.store, self.tokenizer, self.tokens = store, store.tokenizer, store.splits
        splits = store.manifest["splits"]
        for split, tokens in self.tokens.items():
            if splits[split].get("chars"):
                self.tokens_per_char[split] = len(tokens) / splits[split]["chars"]
        self.record = self._record()

    def _record(self) -> dict:
        manifest = self.store.manifest
        sources = manifest.get("sources", {})
        files = sources.get("files", [])
        official = self.corpus in CORPORA
        if self.corpus == "tiny_shakespeare" and files:
            official = hashlib.md5(Path(files[0]).read_bytes()).hexdigest() == TINY_SHAKESPEARE_MD5
        return {
            "name": self.corpus,
            "files": files,
            "official": official,
            "fingerprint": sources.get("fingerprint", "")[:16] or None,
            "encoding": self.spec.encoding,
            "encoding_errors": self.spec.encoding_errors,
            "tokenizer": self.tokenizer_kind,
            "vocab_size": self.store.vocab_size,
            "tokens": {k: len(v) for k, v in self.tokens.items()},
            "chars": {k: v["chars"] for k, v in manifest["splits"].items() if v.get("chars")},
            "store": str(self.store.folder),
            "store_format": manifest["format"],
        }

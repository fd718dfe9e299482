"""Labelled text for sequence classification: ``label<TAB>text`` lines in one file, or a folder
with one sub-folder per class holding a text file per example. Character-tokenised, padded on the
right to a (N, max_length) id tensor, served by the same batch-at-a-time loaders as CIFAR-10.
``tokenizer=hf:<name_or_path>`` tokenises by a Hugging Face model's own tokenizer instead."""

import hashlib
from pathlib import Path
from typing import Annotated, Literal

import lightning as L
import torch
from torch.utils.data import DataLoader

from fmlab.constraints import AT_LEAST_ONE, FRACTION
from fmlab.data.batches import BatchIndices, TensorBatches
from fmlab.data.corpora import read_text
from fmlab.data.tokenizer import CharTokenizer, HFTokenizer, tokenizer_from_dict
from fmlab.errors import FmlabError


def read_examples(path: Path, encoding: str, errors: str) -> list[tuple[str, str]]:
    """(label, text) pairs from a ``label<TAB>text`` file or a folder of class folders."""
    if path.is_file():
        pairs = []
        for n, line in enumerate(read_text(path, "data.path", encoding, errors).splitlines(), 1):
            if not line.strip():
                continue
            label, tab, text = line.partition("\t")
            if not tab:
                raise FmlabError(f"{path}:{n} has no TAB between label and text: {line[:60]!r}")
            pairs.append((label, text))
        return pairs
    if path.is_dir():
        return [
            (folder.name, read_text(file, "data.path", encoding, errors))
            for folder in sorted(p for p in path.iterdir() if p.is_dir())
            for file in sorted(p for p in folder.iterdir() if p.is_file())
        ]
    raise FmlabError(
        f"data.path={str(path)!r} does not exist: give a file of label<TAB>text lines or a folder "
        "with one sub-folder of text files per class."
    )


class LabelledTextDataModule(L.LightningDataModule):
    """Examples split at random (``split_seed``) into train / ``val_fraction`` / ``test_fraction``;
    the character vocabulary comes from the training texts, one extra id pads."""

    def __init__(
        self,
        path: str,
        max_length: Annotated[int, AT_LEAST_ONE] = 256,
        batch_size: Annotated[int, AT_LEAST_ONE] = 32,
        eval_batch_size: Annotated[int, AT_LEAST_ONE] = 256,
        val_fraction: Annotated[float, FRACTION] = 0.1,
        test_fraction: Annotated[float, FRACTION] = 0.1,
        split_seed: int = 0,
        seed: int = 0,
        encoding: str = "utf-8",
        encoding_errors: Literal["strict", "replace", "ignore"] = "strict",
        tokenizer: str = "char",
    ) -> None:
        super().__init__()
        if tokenizer != "char" and not (tokenizer.startswith("hf:") and len(tokenizer) > 3):
            raise FmlabError(
                f"data.tokenizer={tokenizer!r}: use char (from the training texts) or "
                "hf:<name_or_path> (a Hugging Face model's own: a save_pretrained folder or a hub "
                "id)."
            )
        self.tokenizer_name = tokenizer
        self.path, self.max_length = Path(path).expanduser(), max_length
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.split_seed, self.seed = split_seed, seed
        self.encoding, self.encoding_errors = encoding, encoding_errors
        self.tokenizer, self.classes, self.sets, self.record = None, [], {}, {}
        self._given: dict = {}  # a checkpoint's tokenizer and classes, to read other data with

    @property
    def net_args(self) -> dict:
        self._load()
        return {
            "vocab_size": self.tokenizer.vocab_size + 1,  # + the padding id
            "num_classes": len(self.classes),
            "pad_id": self.tokenizer.vocab_size,
            "max_length": self.max_length,
        }

    @property
    def has_val(self) -> bool:
        self._load()
        return "val" in self.sets

    @property
    def has_test(self) -> bool:
        self._load()
        return "test" in self.sets

    def state_dict(self) -> dict:
        return {"tokenizer": self.tokenizer.to_dict(), "classes": self.classes}

    def load_state_dict(self, state: dict) -> None:
        """Before the data is loaded (fmlab-eval): read it with the checkpoint's tokenizer and
        classes. After (a resumed fit): refuse data that would give other ones."""
        if self.tokenizer is None:
            self._given = state
            return
        if state and state != self.state_dict():
            raise FmlabError(
                f"the checkpoint was trained with another vocabulary or other classes than "
                f"{self.path} gives now (classes {state.get('classes')} vs {self.classes}); use "
                "the data it was trained on."
            )

    def setup(self, stage: str | None = None) -> None:
        self._load()

    def _load(self) -> None:
        if self.tokenizer is not None:
            return
        pairs = read_examples(self.path, self.encoding, self.encoding_errors)
        self.classes = self._given.get("classes") or sorted({label for label, _ in pairs})
        if unknown := sorted({label for label, _ in pairs} - set(self.classes)):
            raise FmlabError(
                f"{self.path} has labels {unknown[:5]} that the checkpoint's classifier does not "
                f"know (its classes: {self.classes}). Evaluate on data with those classes only."
            )
        if len(self.classes) < 2:
            raise FmlabError(f"{self.path} holds {len(self.classes)} class(es); need at least 2.")
        order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(self.split_seed))
        n_val, n_test = int(len(pairs) * self.val_fraction), int(len(pairs) * self.test_fraction)
        parts = {
            "val": order[:n_val],
            "test": order[n_val : n_val + n_test],
            "train": order[n_val + n_test :],
        }
        if self._given.get("tokenizer"):
            self.tokenizer = tokenizer_from_dict(self._given["tokenizer"])
        elif self.tokenizer_name.startswith("hf:"):
            self.tokenizer = HFTokenizer.load(self.tokenizer_name[3:])
        else:
            self.tokenizer = CharTokenizer.train("".join(pairs[i][1] for i in parts["train"]))
        for split, idx in parts.items():
            if len(idx):
                self.sets[split] = self._tensors([pairs[i] for i in idx])
        digest = hashlib.sha256("".join(f"{a}\t{b}\n" for a, b in pairs).encode()).hexdigest()
        self.record = {
            "name": str(self.path),
            "official": False,
            "fingerprint": digest[:16],
            "classes": self.classes,
            "sizes": {k: len(v) for k, v in self.sets.items()},
        }

    def _tensors(self, pairs: list[tuple[str, str]]) -> TensorBatches:
        pad = self.tokenizer.vocab_size
        ids = torch.full((len(pairs), self.max_length), pad, dtype=torch.long)  # (N, max_length)
        for row, (_, text) in enumerate(pairs):
            # max_length counts tokens: a character is at least one, so the cut text holds enough.
            encoded = self.tokenizer.encode(text[: self.max_length])[: self.max_length]
            encoded = torch.from_numpy(encoded)
            ids[row, : len(encoded)] = encoded
        labels = torch.tensor([self.classes.index(label) for label, _ in pairs])
        return TensorBatches(ids, labels)

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        dataset = self.sets[split]
        sampler = BatchIndices(len(dataset), batch_size, shuffle=shuffle, seed=self.seed)
        return DataLoader(dataset, batch_size=None, sampler=sampler)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader("val", self.eval_batch_size, False) if "val" in self.sets else []

    def test_dataloader(self) -> DataLoader:
        if "test" not in self.sets:
            raise FmlabError("no test split: set data.test_fraction > 0 or test=false.")
        return self._loader("test", self.eval_batch_size, shuffle=False)

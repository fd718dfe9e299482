"""Labelled text for sequence classification: GLUE's TSV files (SST-2, sentence pairs), plain
``label<TAB>text`` lines, or a folder with one sub-folder per class (see ``labelled_files``).

Official files are used as they are (``train_file``, ``val_file``, ``test_file``); one ``path`` is
split at random. With ``tokenizer`` char, bpe or wordpiece, trained on the training texts, every
example is ``[CLS] text [SEP]`` (pairs: ``[CLS] a [SEP] b [SEP]``) with BERT's special tokens at
ids 0..4 and ``[PAD]`` = 0; ``hf:<name_or_path>`` tokenises by a Hugging Face model's own tokenizer:
one with BERT's special tokens frames and pads with its own, any other gives the text alone and
pads with an id past it, as do the plain char tokenizers of older checkpoints. Every split is
encoded once into a padded tensor; each batch is cut to its longest sequence (dynamic padding).
"""

from pathlib import Path
from typing import Annotated, Literal

import lightning as L
from torch.utils.data import DataLoader

from fmlab.config.constraints import AT_LEAST_ONE, FRACTION
from fmlab.data.batches import BatchIndices, BatchLoader, TrimmedBatches
from fmlab.data.labelled_encoding import TRAINED, encode_examples, has_specials, labelled_tokenizer
from fmlab.data.labelled_files import (
    FORMATS,
    Example,
    fingerprint,
    official_files,
    read_examples,
)
from fmlab.data.labelled_splits import balanced_subset, random_split
from fmlab.data.tokenizers import base_kind
from fmlab.errors import FmlabError


class LabelledTextDataModule(L.LightningDataModule):
    """Train / val / test from their own files, or one ``path`` split at random (``split_seed``)
    into train / ``val_fraction`` / ``test_fraction``. ``train_subset`` keeps a class-balanced
    N training examples (the few-label regime)."""

    def __init__(
        self,
        path: str | None = None,
        train_file: str | None = None,
        val_file: str | None = None,
        test_file: str | None = None,
        format: Literal["auto", "glue", "tsv", "folders"] = "auto",
        text_columns: list[str] | None = None,
        label_column: str = "label",
        tokenizer: str = "char",
        vocab_size: Annotated[int, AT_LEAST_ONE] = 8000,
        max_length: Annotated[int, AT_LEAST_ONE] = 256,
        batch_size: Annotated[int, AT_LEAST_ONE] = 32,
        eval_batch_size: Annotated[int, AT_LEAST_ONE] = 256,
        group_by_length: bool = False,
        val_fraction: Annotated[float, FRACTION] = 0.1,
        test_fraction: Annotated[float, FRACTION] = 0.1,
        train_subset: Annotated[int, AT_LEAST_ONE] | None = None,
        split_seed: int = 0,
        seed: int = 0,
        encoding: str = "utf-8",
        encoding_errors: Literal["strict", "replace", "ignore"] = "strict",
    ) -> None:
        super().__init__()
        if tokenizer not in TRAINED and not (tokenizer.startswith("hf:") and len(tokenizer) > 3):
            raise FmlabError(
                f"data.tokenizer={tokenizer!r}: use char, bpe or wordpiece (trained on the "
                "training texts) or hf:<name_or_path> (a Hugging Face model's own: a "
                "save_pretrained folder or a hub id)."
            )
        if (path is None) == (train_file is None) or (path and (val_file or test_file)):
            raise FmlabError(
                f"data.path={path!r}, data.train_file={train_file!r}: give either data.path (one "
                "file or folder, split at random by data.val_fraction and data.test_fraction) or "
                "data.train_file with data.val_file and data.test_file (each may be null)."
            )
        if format not in FORMATS:
            raise FmlabError(f"data.format={format!r}: use one of {', '.join(FORMATS)}.")
        if text_columns is not None and len(text_columns) not in (1, 2):
            raise FmlabError(
                f"data.text_columns={list(text_columns)}: give one text column or two (a "
                "sentence pair), or null to find GLUE's by name."
            )
        self.tokenizer_name, self.vocab_size, self.max_length = tokenizer, vocab_size, max_length
        self.path = Path(path).expanduser() if path else None
        self.files = {
            split: Path(file).expanduser()
            for split, file in (("train", train_file), ("val", val_file), ("test", test_file))
            if file
        }
        self.format, self.label_column = format, label_column
        self.text_columns = list(text_columns) if text_columns else None
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.group_by_length = group_by_length
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.train_subset, self.split_seed, self.seed = train_subset, split_seed, seed
        self.encoding, self.encoding_errors = encoding, encoding_errors
        self.tokenizer, self.classes, self.sets, self.record = None, [], {}, {}
        self._given: dict = {}  # a checkpoint's tokenizer (and classes), to read the data with

    @property
    def net_args(self) -> dict:
        self._load()
        if self._has_specials:
            vocab_size, pad_id = self.tokenizer.vocab_size, self.tokenizer.special_ids["pad"]
        else:  # hf without specials, and old plain char: one id past the tokenizer's pads
            vocab_size, pad_id = self.tokenizer.vocab_size + 1, self.tokenizer.vocab_size
        return {
            "vocab_size": vocab_size,
            "num_classes": len(self.classes),
            "pad_id": pad_id,
            "max_length": self.max_length,
        }

    @property
    def special_ids(self) -> dict:
        """Ids of pad, unk, cls, sep and mask (0..4 for fmlab's tokenizers), for a masked-LM
        task."""
        self._load()
        if not self._has_specials:
            raise FmlabError(
                f"data.tokenizer={self.tokenizer_name} has no [PAD], [UNK], [CLS], [SEP] and "
                "[MASK] tokens: masked-LM pre-training needs data.tokenizer=char, bpe or "
                "wordpiece, or hf:<name_or_path> of a tokenizer that names all five (BERT's)."
            )
        return dict(self.tokenizer.special_ids)

    @property
    def continuation_ids(self) -> list[int] | None:
        """Ids that continue a word (WordPiece's ## pieces), for task.whole_word; None else."""
        self._load()
        return getattr(self.tokenizer, "continuation_ids", None)

    @property
    def _has_specials(self) -> bool:
        return has_specials(self.tokenizer)

    @property
    def has_val(self) -> bool:
        self._load()
        return "val" in self.sets

    @property
    def has_test(self) -> bool:
        self._load()
        return "test" in self.sets

    def state_dict(self) -> dict:
        self._load()  # after use_tokenizer, the data may be read again first
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
                f"{self._name} gives now (classes {state.get('classes')} vs {self.classes}); use "
                "the data it was trained on."
            )

    def use_tokenizer(self, tokenizer: dict, source: str) -> None:
        """Fine-tuning (``init_from=source``): encode the data with the tokenizer the checkpoint
        was trained with, never a newly trained one. Call it before ``net_args`` sizes the net;
        data already encoded with another tokenizer is read again."""
        theirs = base_kind(tokenizer)
        if theirs != self.tokenizer_name.partition(":")[0]:  # hf:<name> is of kind hf
            setting = f"hf:{tokenizer['name_or_path']}" if theirs == "hf" else theirs
            raise FmlabError(
                f"init_from={source!r} was trained on {theirs} tokens, but this run sets "
                f"data.tokenizer={self.tokenizer_name}. Set data.tokenizer={setting} (the "
                "checkpoint's own tokenizer is then used as it is), or drop init_from to train "
                "from scratch."
            )
        self._given = {**self._given, "tokenizer": tokenizer}
        if self.tokenizer is not None and self.tokenizer.to_dict() != tokenizer:
            self.tokenizer, self.sets, self.record = None, {}, {}

    def setup(self, stage: str | None = None) -> None:
        self._load()

    def _load(self) -> None:
        if self.tokenizer is not None:
            return
        splits = self._read()
        labels = sorted({label for examples in splits.values() for label, _ in examples})
        self.classes = self._given.get("classes") or labels
        if unknown := sorted(set(labels) - set(self.classes)):
            raise FmlabError(
                f"{self._name} has labels {unknown[:5]} that the checkpoint's classifier does not "
                f"know (its classes: {self.classes}). Evaluate on data with those classes only."
            )
        if len(self.classes) < 2:
            raise FmlabError(f"{self._name} holds {len(self.classes)} class(es); need at least 2.")
        # The tokenizer learns from every training text, also those train_subset leaves out: a
        # text without its label is unlabelled data, which the few-label regime may use (as
        # masked-LM pre-training on the same texts does). Never from val or test texts.
        texts = [text for _, pair in splits["train"] for text in pair]
        if self.train_subset is not None:
            splits["train"] = balanced_subset(
                splits["train"], self.classes, self.train_subset, self.split_seed
            )
        given = self._given.get("tokenizer")
        self.tokenizer = labelled_tokenizer(self.tokenizer_name, self.vocab_size, texts, given)
        self.sets = {split: self._encode(ex) for split, ex in splits.items() if ex}
        official = official_files(list(self.files.values()))
        self.record = {
            "name": official[0].split("/")[0] if official else self._name,
            "official": bool(official),
            "files": [str(f) for f in self.files.values()] or [str(self.path)],
            "fingerprint": fingerprint(splits),
            "classes": self.classes,
            "sizes": {k: len(v) for k, v in self.sets.items()},
            "train_subset": self.train_subset,
        }

    @property
    def _name(self) -> str:
        return str(self.files.get("train", self.path))

    def _read(self) -> dict[str, list[Example]]:
        """Examples by split: the official files as they are, or ``path`` split at random."""
        if self.files:
            splits = {s: self._read_file(file, f"data.{s}_file") for s, file in self.files.items()}
        else:
            examples = self._read_file(self.path, "data.path")
            splits = random_split(examples, self.val_fraction, self.test_fraction, self.split_seed)
        if len({len(pair) for examples in splits.values() for _, pair in examples}) > 1:
            raise FmlabError(
                f"the files of {self._name} hold different numbers of text columns; name the "
                "same ones for every file: data.text_columns=[...]."
            )
        return splits

    def _read_file(self, path: Path, key: str) -> list[Example]:
        columns, label = self.text_columns, self.label_column
        return read_examples(
            path, key, self.format, columns, label, self.encoding, self.encoding_errors
        )

    def _encode(self, examples: list[Example]) -> TrimmedBatches:
        name, classes = self.tokenizer_name, self.classes
        return encode_examples(self.tokenizer, name, examples, classes, self.max_length)

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        dataset = self.sets[split]
        lengths = dataset.tensors[1] if self.group_by_length and split == "train" else None
        sampler = BatchIndices(len(dataset), batch_size, shuffle, self.seed, lengths=lengths)
        # Resumable mid-epoch: Lightning checkpoints the training loader's position.
        return BatchLoader(dataset, batch_size=None, sampler=sampler)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader("val", self.eval_batch_size, False) if "val" in self.sets else []

    def test_dataloader(self) -> DataLoader:
        if "test" not in self.sets:
            raise FmlabError(
                "no test split: set data.test_file, or data.test_fraction > 0 with data.path, or "
                "test=false."
            )
        return self._loader("test", self.eval_batch_size, shuffle=False)

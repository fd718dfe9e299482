"""Labelled text for BERT-style classification: GLUE TSV, pairs, subsets, dynamic padding, and the
tokenizers with [PAD] [UNK] [CLS] [SEP] [MASK] at ids 0..4 that travel in checkpoints."""

import os
from pathlib import Path

import pytest
import torch
from conftest import sentence, write_glue

from fmlab.data import LabelledTextDataModule
from fmlab.data.tokenizers import (
    SPECIAL_TOKENS,
    BPETokenizer,
    CharTokenizer,
    WithSpecials,
    WordPieceTokenizer,
    tokenizer_from_dict,
)
from fmlab.errors import FmlabError


def loaded(*args, **kwargs) -> LabelledTextDataModule:
    dm = LabelledTextDataModule(*args, **kwargs)
    dm.setup()
    return dm


def batches(loader) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x.clone(), y.clone()) for x, y in loader]


def test_glue_tsv_with_official_files(tmp_path):
    dm = loaded(
        train_file=str(write_glue(tmp_path / "train.tsv")),
        val_file=str(write_glue(tmp_path / "dev.tsv", n=12)),
        tokenizer="wordpiece",
        vocab_size=200,
        max_length=16,
    )
    sizes = {"vocab_size": dm.tokenizer.vocab_size, "num_classes": 2, "max_length": 16}
    assert dm.net_args == {**sizes, "pad_id": 0}
    assert dm.special_ids == {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}
    assert dm.record["sizes"] == {"train": 60, "val": 12}  # no random split, no test split
    assert dm.record["classes"] == ["0", "1"] and not dm.record["official"]
    assert not dm.has_test
    with pytest.raises(FmlabError, match="no test split"):
        dm.test_dataloader()
    ids, labels = next(iter(dm.val_dataloader()))
    first = dm.tokenizer.decode(ids[0])
    assert first == sentence("1", 0, 1) and labels[0] == 1  # the trailing space is stripped


def test_sentence_pairs_are_cls_a_sep_b_sep(tmp_path):
    dm = loaded(
        train_file=str(write_glue(tmp_path / "train.tsv", pairs=True)),
        tokenizer="wordpiece",
        vocab_size=200,
        max_length=8,
    )
    ids, lengths, _ = dm.sets["train"].tensors
    cls_, sep = dm.special_ids["cls"], dm.special_ids["sep"]
    for row, n in zip(ids, lengths, strict=True):
        real = row[:n].tolist()
        assert real[0] == cls_ and real[-1] == sep and real.count(sep) == 2
        assert n <= 8
    assert int(lengths.max()) == 8  # long pairs are cut, keeping both [SEP]
    # Longest first: a 9-word first text and a 2-word second keep 3 and 2 tokens.
    assert ids[8, :8].tolist().index(sep) == 4


def test_label_tab_text_and_folders_still_read(tmp_path):
    tsv = tmp_path / "labels.tsv"
    tsv.write_text("".join(f"{'ab'[i % 2]}\t{sentence('01'[i % 2], i, 3)}\n" for i in range(40)))
    folders = tmp_path / "folders"
    for i in range(40):
        (folders / "ab"[i % 2]).mkdir(parents=True, exist_ok=True)
        (folders / "ab"[i % 2] / f"{i}.txt").write_text(sentence("01"[i % 2], i, 3))
    for path in (tsv, folders):
        dm = loaded(str(path), max_length=32)
        assert dm.record["sizes"] == {"val": 4, "test": 4, "train": 32}
        assert dm.classes == ["a", "b"] and dm.net_args["pad_id"] == 0
        assert dm.tokenizer.decode(dm.sets["train"].tensors[0][0]) in {
            sentence(label, i, 3) for label in "01" for i in range(40)
        }


def test_train_subset_is_class_balanced_and_deterministic(tmp_path):
    train = str(write_glue(tmp_path / "train.tsv", n=90))

    def subset(n, split_seed=0):
        dm = loaded(train_file=train, train_subset=n, split_seed=split_seed)
        _, _, labels = dm.sets["train"].tensors
        return dm, labels

    dm, labels = subset(21)
    assert torch.bincount(labels).tolist() == [11, 10]  # the remainder to the first class
    assert dm.record["train_subset"] == 21 and dm.record["sizes"]["train"] == 21
    assert torch.equal(dm.sets["train"].tensors[0], subset(21)[0].sets["train"].tensors[0])
    assert not torch.equal(dm.sets["train"].tensors[0], subset(21, 1)[0].sets["train"].tensors[0])
    # The tokenizer learnt every training text, not just the kept ones.
    assert dm.tokenizer.to_dict() == subset(None)[0].tokenizer.to_dict()
    with pytest.raises(FmlabError, match=r"train_subset=80 cannot be drawn.*at most 60"):
        subset(80)


def test_dynamic_padding_cuts_each_batch_to_its_longest(tmp_path):
    dm = loaded(
        train_file=str(write_glue(tmp_path / "train.tsv", n=64)), batch_size=8, max_length=64
    )
    cls_, sep, pad = (dm.special_ids[k] for k in ("cls", "sep", "pad"))
    first = batches(dm.train_dataloader())
    widths = set()
    for ids, labels in first:
        assert ids.dtype == torch.int64 and labels.shape == (len(ids),)
        real = ids != pad
        lengths = real.sum(1)
        assert ids.shape[1] == int(lengths.max()) <= 64  # as wide as the longest in the batch
        assert torch.equal(real, torch.arange(ids.shape[1]) < lengths[:, None])  # pads after
        assert (ids[:, 0] == cls_).all()
        assert (ids[torch.arange(len(ids)), lengths - 1] == sep).all()
        widths.add(ids.shape[1])
    assert len(widths) > 1
    again = batches(dm.train_dataloader())  # the same seed and epoch: the same batches
    assert all(
        torch.equal(a, b)
        for x, y in zip(first, again, strict=True)
        for a, b in zip(x, y, strict=True)
    )


def test_group_by_length_pads_less_and_still_serves_every_example_once(tmp_path):
    train = str(write_glue(tmp_path / "train.tsv", n=640))
    padded = {}
    for group in (False, True):
        dm = loaded(train_file=train, batch_size=8, max_length=64, group_by_length=group)
        served = batches(dm.train_dataloader())
        assert sum(len(y) for _, y in served) == 640 and len(served) == 80
        padded[group] = sum(ids.numel() for ids, _ in served)
        if group:  # a batch's lengths are close; the order of batches is still random
            spans = [int((ids != 0).sum(1).max() - (ids != 0).sum(1).min()) for ids, _ in served]
            assert sum(spans) / len(spans) < 1  # words are 1..9 long: at random, spans of ~6
            first = [ids.shape[1] for ids, _ in served]
            assert first != sorted(first)
            assert first == [ids.shape[1] for ids, _ in batches(dm.train_dataloader())]
    assert padded[True] < 0.8 * padded[False]


def test_wordpiece_round_trip_with_the_specials_first():
    texts = ["The cat sat on the mat.", "A dog sat on the log!"] * 20
    tokenizer = WordPieceTokenizer.train(texts, vocab_size=120)
    vocab = tokenizer.tokenizer.get_vocab()
    assert [vocab[t] for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    ids = tokenizer.encode("the cat sat on the log.")
    assert ids.min() >= 5 and tokenizer.decode(ids) == "the cat sat on the log."
    assert tokenizer.decode([2, *ids, 3, 0, 0]) == "the cat sat on the log."  # specials dropped
    assert tokenizer.special_ids["unk"] in tokenizer.encode("zebra").tolist()  # unseen: [UNK]
    again = tokenizer_from_dict(tokenizer.to_dict())
    assert isinstance(again, WordPieceTokenizer) and again.to_dict() == tokenizer.to_dict()
    assert again.encode("the dog").tolist() == tokenizer.encode("the dog").tolist()
    pieces = {i: t for t, i in vocab.items()}
    continues = tokenizer.continuation_ids  # for whole-word masking
    assert continues and all(pieces[i].startswith("##") for i in continues)
    assert sum(t.startswith("##") for t in vocab) == len(continues)


@pytest.mark.parametrize("base", ["char", "bpe"])
def test_char_and_bpe_get_the_specials_in_front(base):
    text = "hello world, hello there\n" * 20
    plain = CharTokenizer.train(text) if base == "char" else BPETokenizer.train(text, 270)
    tokenizer = WithSpecials(plain)
    assert tokenizer.vocab_size == plain.vocab_size + 5
    assert tokenizer.special_ids == {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}
    ids = tokenizer.encode("hello there")
    assert ids.tolist() == (plain.encode("hello there") + 5).tolist()
    assert tokenizer.decode([2, *ids, 3, 0]) == "hello there"
    again = tokenizer_from_dict(tokenizer.to_dict())
    assert again.to_dict() == tokenizer.to_dict() == {"kind": "specials", "base": plain.to_dict()}
    if base == "char":
        assert tokenizer.encode("hz").tolist()[1] == 1  # unknown: [UNK], decoded as U+FFFD
        assert tokenizer.decode(tokenizer.encode("hz")) == "h\ufffd"


def test_a_plain_char_tokenizer_of_an_old_checkpoint_reads_as_before(tmp_path):
    tsv = tmp_path / "labels.tsv"
    tsv.write_text("".join(f"{'ab'[i % 2]}\t{sentence('01'[i % 2], i, 2)}\n" for i in range(20)))
    old = CharTokenizer.train("abdefgilmnorstuvwy ")
    dm = LabelledTextDataModule(str(tsv), max_length=64)
    dm.load_state_dict({"tokenizer": old.to_dict(), "classes": ["a", "b"]})
    assert dm.net_args["pad_id"] == old.vocab_size == dm.net_args["vocab_size"] - 1
    ids, lengths, _ = dm.sets["train"].tensors
    row = dm.sets["train"][torch.tensor([0])][0][0]
    texts = {sentence(label, i, 2) for label in "01" for i in range(20)}
    assert old.decode(row[: lengths[0]]) in texts
    with pytest.raises(FmlabError, match="masked-LM pre-training needs"):
        assert dm.special_ids


def test_use_tokenizer_takes_the_checkpoints_and_refuses_another_kind(tmp_path):
    train = str(write_glue(tmp_path / "train.tsv"))
    pretrained = WordPieceTokenizer.train(["good bad sweet sour words"] * 5, vocab_size=60)
    dm = loaded(train_file=train, tokenizer="wordpiece", vocab_size=200)
    assert dm.net_args  # loaded with a tokenizer of its own first (as build() does) ...
    assert dm.state_dict()["tokenizer"] != pretrained.to_dict()
    dm.use_tokenizer(pretrained.to_dict(), "pre/last.ckpt")
    assert dm.state_dict()["tokenizer"] == pretrained.to_dict()  # ... then read again with theirs
    assert dm.net_args["vocab_size"] == pretrained.vocab_size
    char = loaded(train_file=train, tokenizer="char")
    named = r"pre/last.ckpt.*wordpiece.*data.tokenizer=char.*data.tokenizer=wordpiece.*init_from"
    with pytest.raises(FmlabError, match=named):
        char.use_tokenizer(pretrained.to_dict(), "pre/last.ckpt")
    wrapped = WithSpecials(CharTokenizer.train("abc")).to_dict()
    char.use_tokenizer(wrapped, "c.ckpt")  # char inside the specials wrapper is char
    assert char.net_args["vocab_size"] == 5 + 4


def test_a_missing_file_is_named_with_the_fix(tmp_path):
    """The fix names where GLUE's SST-2 comes from and where its two files go."""
    data = tmp_path / "sst2"
    dm = LabelledTextDataModule(train_file=str(data / "train.tsv"), val_file=str(data / "dev.tsv"))
    named = (
        r"data.train_file='.*sst2/train.tsv' does not exist.*GLUE's SST-2 \(https://.*SST-2\.zip\)"
    )
    with pytest.raises(FmlabError, match=named):
        dm.setup()
    with pytest.raises(FmlabError, match="either data.path"):
        LabelledTextDataModule(path=str(tmp_path), train_file=str(tmp_path / "t.tsv"))


def test_glue_columns_that_are_not_there_are_named(tmp_path):
    train = write_glue(tmp_path / "train.tsv")
    dm = LabelledTextDataModule(train_file=str(train), text_columns=["review"])
    with pytest.raises(FmlabError, match=r"columns \['sentence', 'label'\].*not \['review'\]"):
        dm.setup()


def test_the_real_sst2(compose_cfg):
    data_dir = os.environ.get("FMLAB_DATA_DIR")
    if not data_dir or not (Path(data_dir) / "sst2" / "train.tsv").is_file():
        pytest.skip(
            "needs SST-2: set FMLAB_DATA_DIR to the folder holding sst2/{train,dev}.tsv (.ci/run "
            "copies them from ../shared/data/sst2)"
        )
    from hydra.utils import instantiate

    dm = instantiate(compose_cfg("train", ["data=sst2", f"paths.data_dir={data_dir}"]).data)
    dm.setup()
    assert dm.record["sizes"] == {"train": 67_349, "val": 872}
    assert dm.classes == ["0", "1"] and dm.record["official"] and dm.record["name"] == "sst2"
    _, lengths, labels = dm.sets["train"].tensors
    assert torch.bincount(labels).tolist() == [29_780, 37_569]  # as the data README counts
    assert int(lengths.max()) <= dm.max_length  # nothing was cut

"""BERT from masked-LM pre-training to fine-tuning through fmlab-train's own code path: the
tokenizer travels in the checkpoint into the fine-tuning run, init_from loads every tensor of the
encoder and records it, a tokenizer of another kind is refused by name, and a short fine-tune on
labelled sentences beats chance."""

import shutil

import pytest
import torch
from conftest import write_glue

from fmlab.commands.train import build, train
from fmlab.data import LabelledTextDataModule
from fmlab.data.tokenizers import SPECIAL_TOKENS
from fmlab.errors import FmlabError
from fmlab.techniques.transfer import take_tokenizer


@pytest.fixture
def glue(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    train_file, dev_file = write_glue(data / "train.tsv", n=240), write_glue(data / "dev.tsv", n=60)
    return [
        f"data.train_file={train_file}",
        f"data.val_file={dev_file}",
        "data.vocab_size=60",
        "data.batch_size=16",
        "logger=csv",
        "trainer.accelerator=cpu",
    ]


def test_pretrain_then_fine_tune_carries_the_tokenizer_and_the_encoder(compose_cfg, glue, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny net: one thread is fastest, and immune to a loaded CPU
    try:
        pre = train(
            compose_cfg("train", ["experiment=bert_tiny_mlm_sst2", *glue, "trainer.max_epochs=3"])
        )
        assert pre["metrics"]["val/mlm_loss"] < 4.0  # ln(60) = 4.09 is a uniform guess
        init_from = tmp_path / "mlm.ckpt"
        shutil.move(pre["checkpoints"]["last"], init_from)
        shutil.rmtree(tmp_path / "checkpoints")  # the next run shares the folder: a new run

        with pytest.raises(FmlabError, match="wordpiece.*bpe|bpe.*wordpiece"):
            train(
                compose_cfg(
                    "train",
                    [
                        "experiment=bert_tiny_sst2",
                        f"init_from={init_from}",
                        *glue,
                        "data.tokenizer=bpe",
                    ],
                )
            )

        # data.vocab_size=30 would train another tokenizer: the checkpoint's is used instead.
        overrides = ["experiment=bert_tiny_sst2", f"init_from={init_from}", *glue]
        overrides += ["data.vocab_size=30", "optimizer.lr=1e-3", "trainer.max_epochs=4"]
        fine = train(compose_cfg("train", overrides))
    finally:
        torch.set_num_threads(threads)
    report = fine["transfer"]
    assert report["loaded"] == report["of"] and not report["shape_differs"]
    assert report["from"] == str(init_from.resolve())
    assert fine["metrics"]["val/acc"] > 0.9  # the words tell the classes apart; the majority: 2/3
    state = "LabelledTextDataModule"
    tokenizers = [
        torch.load(p, weights_only=True)[state]["tokenizer"]
        for p in (init_from, fine["checkpoints"]["last"])
    ]
    assert tokenizers[0] == tokenizers[1] and tokenizers[0]["kind"] == "wordpiece"


def test_masked_lm_on_a_token_store_then_labelled_text_reads_the_same_ids(
    compose_cfg, synthetic_text, tmp_path
):
    overrides = ["data=tiny_shakespeare", "data.special_tokens=true", "data.block_size=32"]
    overrides += ["task=masked_lm", "model=bert_tiny", "optimizer=adamw", "trainer.max_steps=3"]
    overrides += [f"paths.data_dir={synthetic_text}", "logger=csv", "trainer.accelerator=cpu"]
    overrides += ["test=false", "optimized_metric=val/mlm_loss"]
    record = train(compose_cfg("train", overrides))
    assert record["timing"]["train_steps"] == 3 and "val/mlm_loss" in record["metrics"]

    datamodule = build(compose_cfg("train", overrides))[0]
    ids, labels = datamodule.on_after_batch_transfer(next(iter(datamodule.train_dataloader())), 0)
    special = datamodule.special_ids
    assert ids.shape == (datamodule.batch_size, 32) and not labels.any()
    assert (ids[:, 0] == special["cls"]).all() and (ids[:, -1] == special["sep"]).all()
    assert (ids[:, 1:-1] > special["mask"]).all()  # the corpus's ids, past the special ones

    # Fine-tuning on labelled text takes the corpus's tokenizer as the net saw it: same ids.
    checkpoint = torch.load(record["checkpoints"]["last"], weights_only=True)
    labelled = write_glue(tmp_path / "train.tsv")
    sst = LabelledTextDataModule(train_file=str(labelled), tokenizer="char")
    take_tokenizer(sst, checkpoint, "mlm.ckpt")
    sst.setup("fit")
    text = "the"
    corpus_ids = datamodule.tokenizer.encode(text) + len(SPECIAL_TOKENS)
    assert sst.tokenizer.encode(text).tolist() == corpus_ids.tolist()
    assert sst.net_args["vocab_size"] == datamodule.net_args["vocab_size"]

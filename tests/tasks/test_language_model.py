"""Language modelling through the real CLI (train, checkpoint, sample), and sequence
classification through the classification task."""

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_timing, quiet_trainer, run_cli, write_text_corpus

from fmlab.commands.train import build
from fmlab.tasks import ImageClassifier

SHRUNK_GPT = [
    "experiment=gpt_shakespeare_char_cpu",
    "data.block_size=32",
    "data.batch_size=16",
    "model.n_layer=1",
    "model.n_embd=64",
    "optimizer.lr=3e-3",
    "scheduler.lr_lambda.warmup_iters=10",
    "scheduler.lr_lambda.lr_decay_iters=150",
    "trainer.max_steps=150",
    "trainer.val_check_interval=50",
    "trainer.log_every_n_steps=25",
    "logger=csv",
]


@pytest.fixture(scope="module")
def trained_lm(synthetic_text, tmp_path_factory):
    root = tmp_path_factory.mktemp("lm")
    run_dir = root / "run"
    run_cli(
        "fmlab-train",
        *SHRUNK_GPT,
        f"paths.data_dir={synthetic_text}",
        f"hydra.run.dir={run_dir}",
        cwd=root,
        # A net this small runs fastest on one thread; two fight over a shared, loaded CPU.
        env={"OMP_NUM_THREADS": "1"},
    )
    return run_dir, json.loads((run_dir / "results.json").read_text())


def test_a_short_cpu_run_lowers_validation_loss(trained_lm):
    run_dir, record = trained_lm
    with open(run_dir / "csv" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["val/loss"]]
    val = [float(r["val/loss"]) for r in rows]
    vocab = record["data"]["vocab_size"]
    assert [int(r["step"]) for r in rows] == [49, 99, 149]
    assert val[-1] < val[0] < math.log(vocab)  # ln(vocab): the loss at initialisation
    assert val[-1] < math.log(vocab) - 1.0
    metrics = record["metrics"]
    assert metrics["val/loss"] == pytest.approx(val[-1])
    assert metrics["val/bpc"] == pytest.approx(val[-1] / math.log(2))  # characters are tokens
    assert metrics["val/ppl"] == pytest.approx(math.exp(val[-1]), rel=1e-4)
    assert record["timing"]["train_steps"] == 150 and "test/loss" not in metrics
    assert_timing(record)


@pytest.fixture(scope="module")
def shortened_lm(synthetic_text, tmp_path_factory):
    """The recipe validates every 50 steps; stopped by max_steps at 70, between two validations."""
    root = tmp_path_factory.mktemp("short")
    run_dir = root / "run"
    args = ["fmlab-train", *SHRUNK_GPT, f"paths.data_dir={synthetic_text}", "trainer.max_steps=70"]
    run_cli(*args, f"hydra.run.dir={run_dir}", cwd=root, env={"OMP_NUM_THREADS": "1"})
    return run_dir, json.loads((run_dir / "results.json").read_text()), args


def test_a_shortened_run_validates_its_final_weights(shortened_lm):
    run_dir, record, args = shortened_lm
    with open(run_dir / "csv" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["val/loss"]]
    assert [int(r["step"]) for r in rows] == [49, 69]  # the interval's, then the last step's
    assert record["metrics"]["val/loss"] == pytest.approx(float(rows[-1]["val/loss"]))
    # Its best checkpoint is the final step's, so that is what a resumed or tested run sees.
    best = torch.load(record["checkpoints"]["best"], weights_only=True)
    assert best["global_step"] == 70

    # Run again: complete, so nothing trains, and it is not a failure.
    again = run_cli(*args, f"hydra.run.dir={run_dir}", cwd=run_dir.parent)
    assert "already complete" in again.stdout + again.stderr


def test_eval_scores_the_validation_split_and_other_text(shortened_lm, tmp_path):
    run_dir, record, _ = shortened_lm
    ckpt = f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}"
    data_dir = f"paths.data_dir={record['config']['data']['data_dir']}"
    run_cli("fmlab-eval", ckpt, data_dir, f"hydra.run.dir={tmp_path / 'val'}", cwd=tmp_path)
    scored = json.loads((tmp_path / "val" / "results.json").read_text())
    assert scored["split"] == "val"  # tiny-shakespeare has no test split: val, said so
    assert scored["metrics"]["val/loss"] == pytest.approx(record["metrics"]["val/loss"], rel=1e-5)
    assert scored["data"]["store"] == record["data"]["store"]  # training's store, not a copy

    # Another text (unseen characters included) read with the checkpoint's tokenizer.
    other = write_text_corpus(tmp_path / "other.txt", chars=8_000, seed=7)
    other.write_text(other.read_text() + "宝玉笑道。" * 50, encoding="utf-8")
    run_cli(
        "fmlab-eval",
        ckpt,
        f"data.corpus={other}",
        "data.val_fraction=0.5",
        f"hydra.run.dir={tmp_path / 'other'}",
        cwd=tmp_path,
    )
    scored = json.loads((tmp_path / "other" / "results.json").read_text())
    assert scored["data"]["name"] == str(other)
    assert scored["data"]["vocab_size"] == record["data"]["vocab_size"]
    assert scored["data_overrides"] == {"corpus": str(other), "val_fraction": 0.5}
    assert math.isfinite(scored["metrics"]["val/loss"])
    assert scored["metrics"]["val/loss"] > record["metrics"]["val/loss"]  # unknown characters

    # What the net was trained on cannot change.
    refused = run_cli("fmlab-eval", ckpt, "data.tokenizer=bpe", cwd=tmp_path, check=False)
    output = refused.stdout + refused.stderr
    assert refused.returncode == 1 and "Traceback" not in output
    assert "data.tokenizer cannot change at evaluation" in output


def test_checkpoint_is_plain_and_carries_the_tokenizer(trained_lm):
    run_dir, record = trained_lm
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    saved = checkpoint["TextDataModule"]["tokenizer"]
    assert saved == json.loads((run_dir / "tokenizer.json").read_text())
    assert saved["kind"] == "char" and len(saved["chars"]) + 1 == record["data"]["vocab_size"]
    assert checkpoint["lr_schedulers"][0]["_last_lr"]  # the per-step schedule is in there


def test_sampling_from_the_checkpoint(trained_lm, tmp_path):
    run_dir, _ = trained_lm
    proc = run_cli(
        "fmlab-sample",
        f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
        "prompt=ROMEO:",
        "max_new_tokens=120",
        "num_samples=2",
        f"hydra.run.dir={tmp_path / 'sample'}",
        cwd=tmp_path,
        env={"OMP_NUM_THREADS": "1"},
    )
    samples = (tmp_path / "sample" / "samples.txt").read_text().split("\n---------------\n")
    assert len(samples) == 2
    for text in samples:
        assert text.startswith("ROMEO:") and len(text) == len("ROMEO:") + 120
        assert text in proc.stdout
    assert "[INFO]" not in proc.stdout  # the log goes to stderr


def write_labelled(path, n=240, seed=0):
    """Three classes told apart by their alphabet (with shared filler), in label<TAB>text lines."""
    rng = np.random.default_rng(seed)
    alphabets = {"low": "abcdefg", "mid": "hijklmn", "high": "opqrstu"}
    lines = []
    for i in range(n):
        label = list(alphabets)[i % 3]
        chars = rng.choice(list(alphabets[label] + "  xyz"), rng.integers(8, 40))
        lines.append(f"{label}\t{''.join(chars)}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("model", ["seq_lstm", "seq_transformer", "bilstm"])
def test_sequence_classification_on_generated_labelled_text(model, compose_cfg, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny nets: one thread is fastest, and immune to a loaded CPU
    try:
        _train_sequence_classifier(model, compose_cfg, tmp_path)
    finally:
        torch.set_num_threads(threads)


def _train_sequence_classifier(model, compose_cfg, tmp_path):
    path = write_labelled(tmp_path / "labels.tsv")
    cfg = compose_cfg(
        "train",
        [
            "data=labelled_text",
            f"data.path={path}",
            "data.max_length=40",
            "data.batch_size=16",
            f"model={model}",
            "model.n_embd=32",
            "task=classification",
            "optimizer=adamw",
            "optimizer.lr=1e-2",
        ],
    )
    datamodule, task = build(cfg)
    assert isinstance(task, ImageClassifier) and task.net.num_classes == 3
    trainer = quiet_trainer(max_epochs=4, enable_checkpointing=False)
    trainer.fit(task, datamodule=datamodule)
    result = trainer.test(task, datamodule=datamodule, verbose=False)[0]
    assert result["test/acc"] >= 0.9, result
    assert datamodule.record["sizes"] == {"val": 24, "test": 24, "train": 192}


def test_data_with_another_tokenizer_is_refused_for_the_checkpoint(trained_lm, tmp_path):
    from fmlab.data import TextDataModule
    from fmlab.errors import FmlabError

    run_dir, record = trained_lm
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["TextDataModule"]
    corpus = tmp_path / "tinyshakespeare" / "input.txt"
    corpus.parent.mkdir()
    corpus.write_text(Path(record["data"]["files"][0]).read_text())
    same = TextDataModule(str(tmp_path), block_size=32)
    assert same.net_args  # loaded, as in a resumed fit (the net was built from the data)
    same.load_state_dict(state)  # the same text builds the same tokenizer
    corpus.write_text("Zebra! " + corpus.read_text())  # new characters in the training split
    changed = TextDataModule(str(tmp_path), block_size=32)
    assert changed.net_args["vocab_size"] == record["data"]["vocab_size"] + 2  # Z, b
    with pytest.raises(FmlabError, match="different tokenizer"):
        changed.load_state_dict(state)
    # Not loaded yet (fmlab-eval): the text is read with the checkpoint's tokenizer instead.
    adopted = TextDataModule(str(tmp_path), block_size=32)
    adopted.load_state_dict(state)
    assert (
        adopted.tokenizer is None and adopted.net_args["vocab_size"] == record["data"]["vocab_size"]
    )
    assert adopted.tokenizer.to_dict() == state["tokenizer"]


def test_the_task_trains_exactly_like_nanogpts_loop():
    """Same initial weights and batches: Lightning + LanguageModel (param groups, per-step
    schedule, clipping) and nanoGPT's hand-written loop end with the same weights."""
    import copy
    import functools

    from fmlab.nets import GPT
    from fmlab.tasks import LanguageModel
    from fmlab.techniques.schedules import WarmupCosine

    torch.manual_seed(0)
    net = GPT(30, 16, 1, 2, 32)
    reference = copy.deepcopy(net)
    windows = [torch.randint(30, (4, 17)) for _ in range(12)]
    batches = [(w[:, :-1], w[:, 1:]) for w in windows]
    adamw = functools.partial(torch.optim.AdamW, lr=1e-2, betas=(0.9, 0.99), weight_decay=0.1)
    schedule = functools.partial(
        torch.optim.lr_scheduler.LambdaLR, lr_lambda=WarmupCosine(1e-2, 1e-3, 3, 12)
    )
    trainer = quiet_trainer(
        max_steps=12, gradient_clip_val=1.0, accelerator="cpu", enable_checkpointing=False
    )
    loader = torch.utils.data.DataLoader(batches, batch_size=None)
    trainer.fit(LanguageModel(net, adamw, schedule), train_dataloaders=loader)

    params = list(reference.parameters())
    optimizer = adamw(
        [
            {"params": [p for p in params if p.dim() >= 2]},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
    )
    scheduler = schedule(optimizer)
    for x, y in batches:
        reference(x, y)[1].backward()
        torch.nn.utils.clip_grad_norm_(reference.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
    for trained, expected in zip(net.parameters(), reference.parameters(), strict=True):
        assert torch.equal(trained, expected)

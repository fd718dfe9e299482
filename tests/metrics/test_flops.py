"""Throughput in the record: FLOPs per token against nanoGPT's estimate_mfu worked by hand, the
MFU arithmetic, and a real language-model run's tokens/s, FLOP/s and (on a CPU, none) MFU."""

import csv
import json

import pytest
import torch
from conftest import assert_timing, quiet_trainer, run_cli

from fmlab.metrics.flops import mfu, peak_flops
from fmlab.nets import GPT, RecurrentLM
from fmlab.tasks import LanguageModel


def test_gpt2_124m_flops_per_token_is_nanogpts():
    # nanoGPT's config/train_gpt2.py model, built without memory on the meta device.
    with torch.device("meta"):
        net = GPT(50257, 1024, n_layer=12, n_head=12, n_embd=768, bias=False, vocab_multiple=64)
    # Counted by hand: the padded, tied token embedding, then per layer two LayerNorm weights,
    # the QKV and output projections, and the 4x MLP; the final LayerNorm. No position embedding.
    per_layer = 2 * 768 + 768 * 3 * 768 + 768 * 768 + 2 * 768 * 4 * 768
    n = 50304 * 768 + 12 * per_layer + 768
    assert net.wte.weight.shape[0] == 50304
    assert n == net.num_params() == 123_587_328  # nanoGPT prints "123.59M"
    # estimate_mfu: 6N + 12·L·H·Q·T with Q = 768 / 12, T = 1024.
    assert net.flops_per_token() == 6 * n + 12 * 12 * 12 * 64 * 1024 == 854_770_176


def test_padded_logits_are_cut_back_to_the_vocabulary():
    net = GPT(65, 8, n_layer=1, n_head=2, n_embd=16, vocab_multiple=64)
    idx = torch.randint(65, (2, 8))
    logits, loss = net(idx, idx)
    assert net.lm_head.out_features == 128 and logits.shape == (2, 8, 65)
    assert torch.isfinite(loss)


def test_recurrent_flops_count_the_embedding_only_when_tied():
    untied = RecurrentLM(65, "lstm", n_embd=32, hidden_size=32, n_layer=1)
    lstm = 4 * 32 * (32 + 32) + 2 * 4 * 32  # four gates: input and recurrent weights, two biases
    head = 32 * 65 + 65
    assert untied.flops_per_token() == 6 * (lstm + head)
    tied = RecurrentLM(65, "lstm", n_embd=32, hidden_size=32, n_layer=1, tie_weights=True)
    assert tied.flops_per_token() == 6 * (lstm + head)  # the embedding is the head's weight


@pytest.mark.parametrize(
    ("name", "peak"),
    [
        ("NVIDIA A100-SXM4-80GB", 312e12),
        ("NVIDIA A100 80GB PCIe", 312e12),
        ("NVIDIA H100 80GB HBM3", 989e12),
        ("NVIDIA H100 PCIe", 756e12),
        ("NVIDIA H200", 989e12),
        ("NVIDIA GeForce RTX 4090", None),
        (None, None),
    ],
)
def test_peak_by_device_name(name, peak):
    assert peak_flops(name) == peak


def test_mfu_arithmetic():
    assert mfu(156e12, "NVIDIA A100-SXM4-40GB") == pytest.approx(0.5)
    # Eight GPUs together at 8 · 0.4 of one H100's peak: 40% each.
    assert mfu(8 * 0.4 * 989e12, "NVIDIA H100 80GB HBM3", devices=8) == pytest.approx(0.4)
    assert mfu(1e12, None) is None and mfu(1e12, "Some Future GPU") is None


def test_a_cpu_run_records_tokens_and_flops_but_no_mfu(synthetic_text, tmp_path):
    run_dir = tmp_path / "run"
    run_cli(
        "fmlab-train",
        "experiment=gpt_shakespeare_char_cpu",
        f"paths.data_dir={synthetic_text}",
        "data.block_size=16",
        "data.batch_size=4",
        "model.n_layer=1",
        "model.n_embd=32",
        "model.n_head=2",
        "trainer.max_steps=6",
        "trainer.accumulate_grad_batches=2",
        "trainer.log_every_n_steps=2",
        "trainer.val_check_interval=6",
        "logger=csv",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
        env={"OMP_NUM_THREADS": "1"},
    )
    record = json.loads((run_dir / "results.json").read_text())
    timing = record["timing"]
    assert_timing(record)
    # 4 windows of 16 tokens, two micro-batches a step, one process.
    tokens_per_s = timing["tokens_per_s"]
    assert tokens_per_s == pytest.approx(4 * 16 * 2 * 6 / timing["train_s"])
    # GPT(vocab, 16, 1 layer, 2 heads, 32 wide), no biases: 6N + 12·1·2·16·16.
    n = record["data"]["vocab_size"] * 32 + 2 * 32 + 32 * 96 + 32 * 32 + 2 * 32 * 128 + 32
    assert timing["flops_per_token"] == 6 * n + 12 * 2 * 16 * 16
    assert timing["flops_per_s"] == pytest.approx(timing["flops_per_token"] * tokens_per_s)
    assert timing["mfu"] is None  # a CPU has no peak in the table

    with open(run_dir / "csv" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/tokens_per_s")]
    assert [int(r["step"]) for r in rows] == [1, 3, 5]  # every written step
    assert all(float(r["train/tokens_per_s"]) > 0 for r in rows)
    assert "train/mfu" not in rows[0]


def test_a_known_gpu_gets_its_mfu_logged_and_recorded():
    """The GPU path on a CPU: a task told it trains on an H100 (as on_train_start would read it
    from CUDA) logs train/mfu and records MFU = FLOP/s over the H100's peak."""
    torch.manual_seed(0)
    net = GPT(30, 16, n_layer=1, n_head=2, n_embd=32)
    windows = [torch.randint(30, (4, 17)) for _ in range(6)]
    loader = torch.utils.data.DataLoader([(w[:, :-1], w[:, 1:]) for w in windows], batch_size=None)
    task = LanguageModel(net, lambda groups: torch.optim.AdamW(groups, lr=1e-3))
    task.device_name = "NVIDIA H100 80GB HBM3"
    trainer = quiet_trainer(
        max_steps=6, log_every_n_steps=2, accelerator="cpu", enable_checkpointing=False
    )
    trainer.fit(task, train_dataloaders=loader)
    logged = trainer.callback_metrics
    assert float(logged["train/mfu"]) == pytest.approx(
        float(logged["train/tokens_per_s"]) * net.flops_per_token() / 989e12, rel=1e-4
    )
    timing = task.throughput(train_s=2.0, steps=6)
    assert timing["tokens_per_s"] == 4 * 16 * 6 / 2.0
    assert timing["mfu"] == pytest.approx(timing["flops_per_s"] / 989e12)

"""Benchmarks of two text recipes: fmlab-train against a hand-written loop of the same model.

``gpt``: gpt_shakespeare_char_cpu. Both train the same GPT (4 layers, 4 heads, 128 wide, context
64, batch 12) on tiny-shakespeare characters with the same AdamW (decay on matrices only, fused),
warm-up + cosine schedule and gradient clipping.
``mlm``: bert_tiny_mlm_sst2. Both pre-train the same BERT-Tiny by masked-LM on SST-2's training
sentences (WordPiece, batches of 128 grouped by length) with the same masking (15%; 80/10/10),
AdamW (decay on matrices only, fused), gradient clipping and warm-up + linear decay.

Each trains ``--steps`` steps without evaluation, each in its own process, interleaved
``--repeat`` times (the best of each is reported). Prints milliseconds per training step and the
ratio of speeds (target: fmlab ≥ 0.9× the loop).

    FMLAB_DATA_DIR=/path/holding/tinyshakespeare_and_sst2 python scripts/bench_text.py \
        [--bench gpt mlm] [--steps 300]
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BLOCK, BATCH, LR, MIN_LR, WARMUP, DECAY = 64, 12, 1e-3, 1e-4, 100, 2000


def loop(steps: int, cache_dir: str) -> dict:
    """nanoGPT's train.py inner loop, minus evaluation and logging."""
    import torch

    from fmlab.data import TextDataModule
    from fmlab.nets import GPT

    torch.manual_seed(1337)
    data = TextDataModule(os.environ["FMLAB_DATA_DIR"], block_size=BLOCK, cache_dir=cache_dir)
    data.setup("fit")
    tokens = data.tokens["train"]
    model = GPT(data.tokenizer.vocab_size, BLOCK, n_layer=4, n_head=4, n_embd=128, dropout=0.0)
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=LR, betas=(0.9, 0.99), fused=True)
    offsets = torch.arange(BLOCK + 1)

    def get_lr(it: int) -> float:
        if it < WARMUP:
            return LR * (it + 1) / (WARMUP + 1)
        ratio = (it - WARMUP) / (DECAY - WARMUP)
        return MIN_LR + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (LR - MIN_LR)

    losses = []
    started = time.perf_counter()
    for it in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = get_lr(it)
        starts = torch.randint(len(tokens) - BLOCK, (BATCH, 1))
        window = tokens[starts + offsets].long()  # (B, BLOCK + 1)
        _, loss = model(window[:, :-1], window[:, 1:])
        losses.append(loss.detach())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - started
    last = losses[steps - steps % 50 - 50 : steps - steps % 50]  # fmlab's last train/loss window
    return {"ms_per_step": 1000 * seconds / steps, "last_loss": torch.stack(last).mean().item()}


def run_fmlab(steps: int, overrides: list[str], loss_key: str) -> dict:
    """fmlab-train for ``steps`` steps without evaluation: ms per step and the logged loss."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            str(Path(sys.executable).with_name("fmlab-train")),
            *overrides,
            f"trainer.max_steps={steps}",
            "+trainer.limit_val_batches=0",  # the loop does not evaluate either
            "optimized_metric=null",
            "callbacks.model_checkpoint.monitor=null",
            f"hydra.run.dir={tmp}/run",
        ]
        env = {**os.environ, "WANDB_MODE": "offline", "FMLAB_ROOT": tmp}
        subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)
        record = json.loads(Path(tmp, "run", "results.json").read_text())
    timing = record["timing"]
    return {
        "ms_per_step": 1000 * timing["train_s"] / timing["train_steps"],
        "last_loss": record["metrics"].get(loss_key, math.nan),
    }


def fmlab(steps: int, cache_dir: str) -> dict:
    # train/loss: the mean of the last 50 steps
    overrides = ["experiment=gpt_shakespeare_char_cpu", f"data.cache_dir={cache_dir}"]
    return run_fmlab(steps, overrides, "train/loss")


def mlm_loop(steps: int, cache_dir: str) -> dict:
    """A plain PyTorch masked-LM loop: the same data module's batches, masking written out."""
    import torch
    import torch.nn.functional as F

    from fmlab.data import LabelledTextDataModule
    from fmlab.nets import Bert

    torch.manual_seed(42)
    sst2 = Path(os.environ["FMLAB_DATA_DIR"], "sst2")
    data = LabelledTextDataModule(
        train_file=str(sst2 / "train.tsv"), tokenizer="wordpiece", vocab_size=8000,
        max_length=128, batch_size=128, group_by_length=True, seed=42,
    )  # fmt: skip
    data.setup("fit")
    special = data.special_ids
    vocab = data.net_args["vocab_size"]
    model = Bert(vocab, 2, special["pad"], 128, n_layer=2, n_embd=128, n_head=2)
    model.pooler.requires_grad_(False)  # as the task: no gradient reaches the classifier
    model.classifier.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.01},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=1e-3, fused=True)
    total, warmup = 5 * 527, 263  # the recipe's 5 epochs, 10% warm-up
    never = torch.tensor([special[k] for k in ("pad", "cls", "sep", "mask")])
    g = torch.Generator().manual_seed(42)
    losses, it = [], 0
    started = time.perf_counter()
    while it < steps:
        for ids, _ in data.train_dataloader():
            if it == steps:
                break
            lr = 1e-3 * ((it + 1) / warmup if it < warmup else (total - it) / (total - warmup))
            for group in optimizer.param_groups:
                group["lr"] = lr
            u = torch.rand(ids.shape, generator=g)  # (B, T)
            chosen = ~torch.isin(ids, never) & (u < 0.15)
            split = u / 0.15
            to_mask = chosen & (split < 0.8)
            to_random = chosen & ~to_mask & (split < 0.9)
            drawn = torch.randint(5, vocab, ids.shape, generator=g)
            inputs = torch.where(to_random, drawn, ids).masked_fill(to_mask, special["mask"])
            logits = model.mlm_logits(model.encode(inputs), chosen)  # (N, vocab)
            loss = F.cross_entropy(logits, ids[chosen])
            losses.append(loss.detach())
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)  # as the recipe (Devlin et al. 2019)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            it += 1
    seconds = time.perf_counter() - started
    return {
        "ms_per_step": 1000 * seconds / steps,
        "last_loss": torch.stack(losses[-50:]).mean().item(),
    }


def mlm_fmlab(steps: int, cache_dir: str) -> dict:
    return run_fmlab(steps, ["experiment=bert_tiny_mlm_sst2", "logger=csv"], "train/loss_step")


CHILDREN = {"loop": loop, "fmlab": fmlab, "mlm_loop": mlm_loop, "mlm_fmlab": mlm_fmlab}
BENCHES = {"gpt": ("loop", "fmlab"), "mlm": ("mlm_loop", "mlm_fmlab")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", choices=list(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--bench", nargs="+", choices=list(BENCHES), default=list(BENCHES))
    parser.add_argument("--repeat", type=int, default=2, help="interleaved runs of each; best kept")
    parser.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir()) / "fmlab-bench"))
    args = parser.parse_args()
    if "FMLAB_DATA_DIR" not in os.environ:
        sys.exit("set FMLAB_DATA_DIR to the folder holding tinyshakespeare/ and sst2/")
    if args.child:
        print(json.dumps(CHILDREN[args.child](args.steps, args.cache_dir)))
        return
    for bench in args.bench:
        compare(bench, args)


def compare(bench: str, args) -> None:
    best: dict[str, dict] = {}
    for repeat in range(args.repeat):
        for mode in BENCHES[bench]:
            cmd = [sys.executable, __file__, "--child", mode, "--steps", str(args.steps)]
            cmd += ["--cache-dir", args.cache_dir]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            result = json.loads(out.strip().splitlines()[-1])
            print(
                f"{bench} repeat {repeat} {mode:9s} {result['ms_per_step']:7.1f} ms/step",
                flush=True,
            )
            if mode not in best or result["ms_per_step"] < best[mode]["ms_per_step"]:
                best[mode] = result
    head = f"\n{bench}: {'':19s}{'ms/step':>9s}{'loss':>8s}"
    print(f"{head}   ({args.steps} steps, best of {args.repeat};")
    print(
        "loss: gpt, mean training loss of the last whole 50 steps; mlm, the last logged / last 50)"
    )
    loop_mode, fmlab_mode = BENCHES[bench]
    for mode, name in ((loop_mode, "hand-written loop"), (fmlab_mode, "fmlab-train")):
        print(f"{name:24s}{best[mode]['ms_per_step']:9.1f}{best[mode]['last_loss']:8.3f}")
    ratio = best[loop_mode]["ms_per_step"] / best[fmlab_mode]["ms_per_step"]
    print(f"{bench}: fmlab speed / loop speed: {ratio:.2f}x (target >= 0.9)\n")


if __name__ == "__main__":
    main()

"""Benchmark of LoRA on fmlab's GPT: full fine-tuning against LoRA adapters (Hu et al. 2021).

Both run fmlab-train on ``experiment=gpt_shakespeare_char_cpu`` (4 layers, 4 heads, 128 wide,
context 64, batch 12) from the same init (seed 42): every weight trains, or only rank-``--r``
adapters on the attention and MLP linears (``c_attn, c_proj, mlp.0, mlp.2``). Each trains
``--steps`` steps without evaluation, in its own process, one after the other, ``--repeat`` times
(the best of each is reported). Prints trainable parameters, the size of the last checkpoint
(adapter-only under LoRA, optimizer state included) and milliseconds per training step, side by
side, with LoRA's ratio to full fine-tuning.

    FMLAB_DATA_DIR=/path/holding/tinyshakespeare python scripts/bench_lora.py [--steps 200] [--r 8]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

LINEARS = "[c_attn,c_proj,mlp.0,mlp.2]"


def run(steps: int, cache_dir: str, lora: list[str]) -> dict:
    """fmlab-train for ``steps`` steps: parameters, checkpoint bytes and ms per step."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            str(Path(sys.executable).with_name("fmlab-train")),
            "experiment=gpt_shakespeare_char_cpu",
            f"data.cache_dir={cache_dir}",
            *lora,
            f"trainer.max_steps={steps}",
            "+trainer.limit_val_batches=0",  # training speed only
            "optimized_metric=null",
            "callbacks.model_checkpoint.monitor=null",
            "logger=none",
            "test=false",
            f"hydra.run.dir={tmp}/run",
        ]
        env = {**os.environ, "FMLAB_ROOT": tmp}
        subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)
        record = json.loads(Path(tmp, "run", "results.json").read_text())
        ckpt_bytes = Path(tmp, "run", "checkpoints", "last.ckpt").stat().st_size
    timing = record["timing"]
    return {
        "trainable": record["parameters"]["trainable"],
        "total": record["parameters"]["total"],
        "ckpt_kb": ckpt_bytes / 1024,
        "ms_per_step": 1000 * timing["train_s"] / timing["train_steps"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--r", type=int, default=8, help="the adapters' rank")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    lora = [f"task.lora.target_modules={LINEARS}", f"task.lora.r={args.r}"]
    best: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as cache_dir:  # tokenised once, shared by every run
        for _ in range(args.repeat):
            for name, extra in (("full", []), (f"lora r={args.r}", lora)):
                result = run(args.steps, cache_dir, extra)
                if name not in best or result["ms_per_step"] < best[name]["ms_per_step"]:
                    best[name] = result
    full, adapted = best.values()
    print(f"gpt_shakespeare_char_cpu, {args.steps} steps, best of {args.repeat}")
    print(f"{'':<16}{'full':>12}{f'lora r={args.r}':>12}{'lora/full':>12}")
    for key, label, fmt in (
        ("trainable", "trainable", "{:>12,}"),
        ("total", "parameters", "{:>12,}"),
        ("ckpt_kb", "checkpoint KB", "{:>12.0f}"),
        ("ms_per_step", "ms/step", "{:>12.2f}"),
    ):
        ratio = adapted[key] / full[key]
        print(f"{label:<16}" + fmt.format(full[key]) + fmt.format(adapted[key]) + f"{ratio:>12.3f}")


if __name__ == "__main__":
    main()

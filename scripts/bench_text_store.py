"""Language-model data on the token store against the in-memory path it replaced, side by side.

1. Speed and sameness: `fmlab-train experiment=gpt_shakespeare_char_cpu` on tiny-shakespeare with
   this tree and with a baseline revision (default 41dfa4a, the last in-memory one), alternating,
   `--rounds` times each: ms/step and the final val/loss (the same windows give the same loss).
2. Memory: peak RSS (/usr/bin/time) of `... data.corpus=<file> trainer.max_steps=20` (and 20
   validation batches) on corpora of `--sizes` MB made from tiny-shakespeare's lines, shuffled:
   how much each extra MB of text adds.

    python scripts/bench_text_store.py                     # both parts
    python scripts/bench_text_store.py --steps 300 --sizes 40,320 --no-baseline-memory

The baseline runs from a git worktree of --baseline in a temporary folder, with this venv.
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAIN = "from fmlab.cli import train; train()"


def run_train(src: Path, run_dir: Path, *overrides: str) -> tuple[dict, int]:
    """One fmlab-train from the tree ``src``: its results.json and peak RSS in KiB."""
    env = {**os.environ, "PYTHONPATH": str(src / "src"), "WANDB_MODE": "offline"}
    cmd = ["/usr/bin/time", "-f", "maxrss_kib=%M", sys.executable, "-c", TRAIN,
           "experiment=gpt_shakespeare_char_cpu", "logger=csv", f"hydra.run.dir={run_dir}",
           *overrides]  # fmt: skip
    proc = subprocess.run(cmd, cwd=run_dir.parent, env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    rss = int(proc.stderr.rpartition("maxrss_kib=")[2].split()[0])
    return json.loads((run_dir / "results.json").read_text()), rss


def make_corpus(path: Path, mb: int, source: Path) -> None:
    lines = source.read_text().splitlines(keepends=True)
    rng = random.Random(mb)
    with open(path, "w") as f:
        written = 0
        while written < mb * 2**20:
            rng.shuffle(lines)
            block = "".join(lines)
            f.write(block)
            written += len(block)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", default="41dfa4a")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--sizes", default="40,320", help="corpus sizes in MB for the memory part")
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--no-baseline-memory", action="store_true")
    args = parser.parse_args()
    data_dir = Path(os.environ.get("FMLAB_DATA_DIR", ROOT / "data"))
    shakespeare = data_dir / "tinyshakespeare" / "input.txt"

    with tempfile.TemporaryDirectory(prefix="bench_text_store.") as tmp:
        tmp = Path(tmp)
        base = tmp / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(base),
                        args.baseline], check=True)  # fmt: skip
        try:
            sides = {"store": ROOT, "in-memory": base}
            if not args.no_speed:
                speed(sides, tmp, args)
            if not args.no_memory:
                memory(sides, tmp, args, shakespeare)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)])


def speed(sides: dict, tmp: Path, args) -> None:
    ms: dict[str, list[float]] = {s: [] for s in sides}
    loss: dict[str, list[float]] = {s: [] for s in sides}
    for r in range(args.rounds):
        for side, src in sides.items():
            run = tmp / f"speed-{side}-{r}"
            record, _ = run_train(src, run, f"trainer.max_steps={args.steps}", f"seed={args.seed}")
            ms[side].append(1000 / record["timing"]["train_steps_per_s"])
            loss[side].append(record["metrics"]["val/loss"])
            print(f"round {r} {side:>9}: {ms[side][-1]:.2f} ms/step, val/loss "
                  f"{loss[side][-1]:.4f}", flush=True)  # fmt: skip
    mean = {s: statistics.mean(v) for s, v in ms.items()}
    print(f"\ngpt_shakespeare_char_cpu, {args.steps} steps, seed {args.seed}, {args.rounds} rounds")
    print(f"{'':>10} {'ms/step':>8} {'val/loss':>9}")
    for side in sides:
        print(f"{side:>10} {mean[side]:8.2f} {statistics.mean(loss[side]):9.4f}")
    ratio = mean["in-memory"] / mean["store"]
    diff = abs(statistics.mean(loss["store"]) - statistics.mean(loss["in-memory"]))
    print(f"steps/s, store / in-memory: {ratio:.3f}x (target >= 0.97); val/loss differs by "
          f"{diff:.5f} (target <= 0.005)\n", flush=True)  # fmt: skip


def memory(sides: dict, tmp: Path, args, shakespeare: Path) -> None:
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.no_baseline_memory:
        sides = {"store": sides["store"]}
    peak: dict[str, dict[int, float]] = {s: {} for s in sides}
    for mb in sizes:
        corpus = tmp / f"corpus-{mb}mb.txt"
        make_corpus(corpus, mb, shakespeare)
        for side, src in sides.items():
            run = tmp / f"mem-{side}-{mb}"
            # 20 validation batches, not the 524k windows of a 32 MB split: both sides alike.
            _, rss = run_train(src, run, f"data.corpus={corpus}", "trainer.max_steps=20",
                               "+trainer.limit_val_batches=20")  # fmt: skip
            peak[side][mb] = rss / 2**20
            print(f"{side:>9} on {mb} MB: peak RSS {peak[side][mb]:.2f} GiB", flush=True)
        for folder in corpus.parent.glob(".fmlab-cache"):
            subprocess.run(["rm", "-rf", str(folder)])  # the next size prepares its own
    small, large = sizes[0], sizes[-1]
    print("\nfmlab-train ... data.corpus=<file> trainer.max_steps=20: peak RSS (GiB)")
    print(f"{'':>10} " + " ".join(f"{s:>7} MB" for s in sizes) + "  extra RSS / extra text")
    for side in peak:
        extra = (peak[side][large] - peak[side][small]) * 1024 / (large - small)
        print(f"{side:>10} " + " ".join(f"{peak[side][s]:10.2f}" for s in sizes) +
              f"  {extra:.2f}x (target for the store < 0.25)")  # fmt: skip


if __name__ == "__main__":
    main()

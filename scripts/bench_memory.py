"""Benchmark of a recipe's memory as it trains: RSS at the end of every epoch and the peak, under
glibc's default allocator settings and under the ones given, side by side with their speed.

The question it answers (issue "What measuring found", item 4): bert_tiny_mlm_sst2 grows from
2.3 GB after its first epoch to 3.2 GB at its eighth. A leak (something kept per step) grows
under every allocator setting; glibc keeping freed memory in its heap grows only under the
default, which hands large freed blocks back to the heap instead of the system. So each run
is made twice: as is, and with ``MALLOC_MMAP_THRESHOLD_=65536`` (every block of 64 KiB or more
mapped and unmapped on its own), and the growth and the cost in steps/s are printed.

    FMLAB_DATA_DIR=/path/holding/sst2 python scripts/bench_memory.py            # the full recipe
    python scripts/bench_memory.py --epochs 3 --env MALLOC_ARENA_MAX=1           # other settings

Each epoch's RSS is read in the run itself, by a callback this script adds to it
(``+callbacks.rss``), at the end of the epoch's training and validation.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from lightning.pytorch.callbacks import Callback


class EpochRSS(Callback):
    """Writes the process's resident memory and its peak so far (MiB, Linux) at the end of every
    epoch to ``path``."""

    def __init__(self, path: str) -> None:
        self.path, self.rss, self.peak = Path(path), [], []

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        self.rss.append(pages * os.sysconf("SC_PAGE_SIZE") / 2**20)
        self.peak.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10)  # KiB
        self.path.write_text(json.dumps({"rss": self.rss, "peak": self.peak}))


def run(recipe: str, epochs: int, env_vars: list[str], extra: list[str]) -> dict:
    """One fmlab-train of ``recipe`` in a fresh process: RSS per epoch, peak RSS, steps/s."""
    out = Path(tempfile.mkdtemp(prefix="bench_memory_"))
    paths = [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, paths))}
    env.update(v.split("=", 1) for v in env_vars)
    cmd = [
        str(Path(sys.executable).with_name("fmlab-train")),
        f"experiment={recipe}",
        f"trainer.max_epochs={epochs}",
        "logger=none",
        f"hydra.run.dir={out}",
        "+callbacks.rss._target_=bench_memory.EpochRSS",
        f"+callbacks.rss.path={out / 'rss.json'}",
        *extra,
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    record = json.loads((out / "results.json").read_text())
    return {**json.loads((out / "rss.json").read_text()), **record["timing"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="bert_tiny_mlm_sst2")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument(
        "--env", action="append", default=None, help="a setting to compare (repeatable)"
    )
    parser.add_argument("overrides", nargs="*", help="fmlab-train overrides for every run")
    args = parser.parse_args()
    variants = [[]] + [[v] for v in (args.env or ["MALLOC_MMAP_THRESHOLD_=65536"])]
    results = {}
    for variant in variants:  # one after the other: nothing else on the machine while each runs
        results[" ".join(variant) or "default"] = run(
            args.recipe, args.epochs, variant, args.overrides
        )
    base = results["default"]["train_steps_per_s"]
    print(f"{args.recipe}, {args.epochs} epochs: RSS (MiB) at the end of each epoch")
    for name, r in results.items():
        first, peak, speed = r["rss"][0], r["peak"][-1], r["train_steps_per_s"]
        print(f"\n{name}: " + " ".join(f"{x:.0f}" for x in r["rss"]))
        print(
            f"  peak {peak:.0f} MiB = {peak / first:.2f}x the RSS after epoch 1 (target <= 1.25); "
            f"{speed:.2f} steps/s = {speed / base:.2f}x default"
        )


if __name__ == "__main__":
    main()

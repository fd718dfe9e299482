"""Two fmlab-train runs started together on one machine, against one run alone.

A lab's workstation is never idle. Each run of two started together should keep >= 0.8x the
steps/s it has alone on a small net (seed_convnet) and lose no more than its fair share on a
larger one (resnet20_cifar10 at batch 128: 0.5x on 2 cores). For each recipe it runs, one after
the other: alone and two together, with `torch_threads=auto` (fmlab's default) and with
`torch_threads=<every core>` (torch's own default, fmlab before auto), and prints each run's
training steps/s (results.json: timing.train_steps_per_s), the threads it took, and the ratios.

    FMLAB_DATA_DIR=/path/holding/cifar-10-batches-py python scripts/bench_threads.py
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

RECIPES = {  # recipe: the overrides that make it a short benchmark
    "seed_convnet": ["experiment=seed_convnet", "trainer.max_epochs=1"],
    "resnet20_b128": [
        "experiment=resnet20_cifar10", "data.batch_size=128", "trainer.max_epochs=1",
        "data.val_size=0",
    ],
}  # fmt: skip


def start(recipe: str, steps: int, threads: str, out: Path) -> subprocess.Popen:
    command = [
        str(Path(sys.executable).with_name("fmlab-train")),
        *RECIPES[recipe],
        f"++trainer.limit_train_batches={steps}",
        f"torch_threads={threads}",
        "logger=csv",
        "test=false",
        "optimized_metric=null",
        "callbacks=none",
        f"hydra.run.dir={out}",
    ]
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def runs(recipe: str, steps: int, threads: str, together: int, root: Path) -> list[dict]:
    """``together`` runs started at once; their records."""
    outs = [root / f"{recipe}-{threads}-{together}-{i}" for i in range(together)]
    procs = [start(recipe, steps, threads, out) for out in outs]
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"fmlab-train exited {proc.returncode}:\n{err.decode()[-3000:]}")
    return [json.loads((out / "results.json").read_text()) for out in outs]


def took_threads(record: dict) -> str:
    """The threads a run took: ``fewest-most`` where torch_threads=auto changed them."""
    fewest, most = record.get("fewest", record["threads"]), record.get("most", record["threads"])
    return str(most) if fewest == most else f"{fewest}-{most}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=3000, help="seed_convnet's training steps")
    parser.add_argument("--big-steps", type=int, default=100, help="resnet20's training steps")
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    print(f"{cores} cores; training steps/s of each run (the threads it took)")
    with tempfile.TemporaryDirectory(prefix="bench_threads_") as tmp:
        steps_of = {"seed_convnet": args.steps, "resnet20_b128": args.big_steps}
        for recipe, steps in ((r, steps_of[r]) for r in args.recipes):
            for threads in ("auto", str(cores)):
                alone = runs(recipe, steps, threads, 1, Path(tmp))[0]
                pair = runs(recipe, steps, threads, 2, Path(tmp))
                base = alone["timing"]["train_steps_per_s"]
                rates = [r["timing"]["train_steps_per_s"] for r in pair]
                took = [took_threads(r["torch_threads"]) for r in [alone, *pair]]
                print(
                    f"{recipe:<14} torch_threads={threads:<5} alone {base:7.1f} ({took[0]})  "
                    f"together {rates[0]:7.1f} ({took[1]}) {rates[1]:7.1f} ({took[2]})  "
                    f"ratio {rates[0] / base:.2f} {rates[1] / base:.2f}"
                )


if __name__ == "__main__":
    main()

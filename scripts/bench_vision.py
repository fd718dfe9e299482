"""Training throughput of every vision net: `fmlab-train` against a hand-written PyTorch loop.

For each net (a conf/model/ name), batch size and device, one after the other in fresh processes:
  (h) a hand-written loop: the CIFAR-10 training images as a uint8 tensor, a random batch per step,
      the same batched crop + flip + normalisation, the net built from the same YAML, fused SGD
      (momentum 0.9), cross-entropy, backward, step;
  (f) `fmlab-train model=<net>` with the default callbacks and a CSV logger, no validation and no
      test, for the same number of steps; images/s = its record's timing.train_steps_per_s × batch.
Both time all their steps (the first included). Prints images/s side by side and f/h (target
≥ 0.9). Runs on the CPU, and on CUDA when present. A net `timm:<name>` is timm's own: the hand loop
builds `timm.create_model(name, num_classes=10)` itself, fmlab-train runs `model=timm
model.name=<name>`.

`--timm` times timm's ResNet-18 that way at 32×32, and beside it fmlab's own `model=resnet18`
(its CIFAR stem keeps 32×32 feature maps where timm's ImageNet stem shrinks them to 8×8: about 15×
the FLOPs, so fewer steps and no hand loop; its row is there to show what the CIFAR variant costs).

`--fast` instead times experiment=cifar10_fast to its test accuracy on CUDA (uncompiled and
compiled), next to airbench94's published 94.01% in 3.83 s / 3.09 s on an A100.

    FMLAB_DATA_DIR=/path/holding/cifar-10-batches-py python scripts/bench_vision.py \
        --nets resnet20,resnet18,vit --steps 200 --batch-size 128
    python scripts/bench_vision.py --timm --device cpu   # ~3.5 min on 2 idle cores, 7 on busy ones
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

ALL_NETS = (
    "convnet,resnet20,resnet56,resnet110,resnet18,resnet34,vgg11,vgg16,mobilenetv2,vit,resnet9"
)
AIRBENCH94 = {"uncompiled": 3.83, "compiled": 3.09}  # seconds on an A100, 94.01% (Jordan 2024)


def hand_loop(net_name: str, batch_size: int, steps: int, device: str, seed: int) -> dict:
    import pickle

    import numpy as np
    import torch
    import torch.nn.functional as F
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from fmlab import CONF_DIR
    from fmlab.data.augment import normalize, normalizer, random_crop, random_flip

    folder = Path(os.environ.get("FMLAB_DATA_DIR", "data")) / "cifar-10-batches-py"
    xs, ys = [], []
    for i in range(1, 6):
        with open(folder / f"data_batch_{i}", "rb") as f:
            entry = pickle.load(f, encoding="bytes")
        xs.append(entry[b"data"])
        ys.append(entry[b"labels"])
    x = torch.from_numpy(np.concatenate(xs)).view(-1, 3, 32, 32)  # uint8
    y = torch.tensor(np.concatenate(ys), dtype=torch.long)

    torch.manual_seed(seed)
    if net_name.startswith("timm:"):  # timm's model itself, not fmlab's TimmNet around it
        import timm

        net = timm.create_model(net_name.removeprefix("timm:"), num_classes=10).to(device)
    else:
        net_cfg = OmegaConf.load(Path(CONF_DIR, "model", f"{net_name}.yaml"))
        net = instantiate(net_cfg, num_classes=10).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, fused=True)
    scale, shift = normalizer((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), device)
    order = torch.randperm(len(x)).split(batch_size)
    started = time.perf_counter()
    for step in range(steps):
        idx = order[step % len(order)]
        xb, yb = x[idx].to(device), y[idx].to(device)
        xb = normalize(random_flip(random_crop(xb, 4)), scale, shift)
        loss = F.cross_entropy(net(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if device == "cuda":
        torch.cuda.synchronize()
    return {"images_per_s": steps * batch_size / (time.perf_counter() - started)}


def fmlab_train(overrides: list[str]) -> dict:
    """One fmlab-train run in a fresh process; its results.json."""
    out = Path(tempfile.mkdtemp(prefix="bench_vision_"))
    cmd = [str(Path(sys.executable).with_name("fmlab-train")), *overrides, f"hydra.run.dir={out}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads((out / "results.json").read_text())


def fmlab_loop(net_name: str, batch_size: int, steps: int, device: str, seed: int) -> dict:
    model = [f"model={net_name}"]
    if net_name.startswith("timm:"):
        model = ["model=timm", f"model.name={net_name.removeprefix('timm:')}"]
    record = fmlab_train(
        [
            *model,
            f"data.batch_size={batch_size}",
            "data.val_size=0",
            f"trainer.max_steps={steps}",
            "trainer.max_epochs=-1",
            f"trainer.accelerator={'gpu' if device == 'cuda' else 'cpu'}",
            "test=false",
            "optimized_metric=null",
            "logger=csv",
            f"seed={seed}",
        ]
    )
    return {"images_per_s": record["timing"]["train_steps_per_s"] * batch_size}


def child(mode: str, net: str, device: str, steps: int, args) -> float:
    """Images/s of hand or fmlab for one net and device in a fresh process: the same start-up."""
    if mode == "fmlab":
        return fmlab_loop(net, args.batch_size, steps, device, args.seed)["images_per_s"]
    cmd = [sys.executable, __file__, "--child", "--nets", net, "--device", device]
    cmd += ["--batch-size", str(args.batch_size), "--steps", str(steps)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"hand loop failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["images_per_s"]


def best_of(runs: dict, repeat: int) -> dict:
    """The best images/s of each run, the runs interleaved so that a slow spell hits them all."""
    best = dict.fromkeys(runs, 0.0)
    for _ in range(repeat):
        for name, run in runs.items():
            best[name] = max(best[name], run())
    return best


def throughput_table(args, devices: list[str]) -> None:
    print(f"batch {args.batch_size}, {args.steps} steps, best of {args.repeat} interleaved runs")
    print("| device | net            | hand img/s | fmlab img/s | fmlab/hand |")
    print("|--------|----------------|-----------:|------------:|-----------:|")
    missed = []
    for device in devices:
        for net in args.nets.split(","):
            best = best_of(
                {
                    mode: partial(child, mode, net, device, args.steps, args)
                    for mode in ("hand", "fmlab")
                },
                args.repeat,
            )
            ratio = best["fmlab"] / best["hand"]
            print(
                f"| {device:<6} | {net:<14} | {best['hand']:10.1f} | {best['fmlab']:11.1f} | "
                f"{ratio:9.2f}× |",
                flush=True,
            )
            if ratio < 0.9:
                missed.append(f"{device}/{net}")
    print("target fmlab/hand ≥ 0.9:", f"MISSED for {', '.join(missed)}" if missed else "met")


def timm_table(args, devices: list[str]) -> None:
    """timm's ResNet-18: its hand loop, fmlab-train model=timm, and fmlab's own model=resnet18."""
    print(f"batch {args.batch_size}, 32×32 input, best of {args.repeat} interleaved runs")
    print("| device | run                                        | steps |   img/s | / hand |")
    print("|--------|--------------------------------------------|------:|--------:|-------:|")
    missed = []
    for device in devices:
        own_steps = args.own_steps or (args.steps if device == "cuda" else max(2, args.steps // 10))
        rows = {
            "hand loop: timm.create_model('resnet18')": ("hand", "timm:resnet18", args.steps),
            "fmlab-train model=timm model.name=resnet18": ("fmlab", "timm:resnet18", args.steps),
            "fmlab-train model=resnet18 (CIFAR stem)": ("fmlab", "resnet18", own_steps),
        }
        runs = {name: partial(child, *row[:2], device, row[2], args) for name, row in rows.items()}
        best = best_of(runs, args.repeat)
        hand, timm_fmlab, _ = best.values()
        for name, images_per_s in best.items():
            print(
                f"| {device:<6} | {name:<42} | {rows[name][2]:5d} | {images_per_s:7.1f} | "
                f"{images_per_s / hand:5.2f}× |",
                flush=True,
            )
        if timm_fmlab / hand < 0.9:
            missed.append(device)
    print(
        "target fmlab-train model=timm / hand loop ≥ 0.9:",
        f"MISSED on {', '.join(missed)}" if missed else "met",
    )


def time_to_accuracy(args) -> None:
    """cifar10_fast on CUDA: mean test accuracy and training seconds over ``--runs`` seeds."""
    print("| run                  | runs | mean test acc | mean train s | airbench94 (A100) |")
    print("|----------------------|-----:|--------------:|-------------:|------------------:|")
    for variant, extra in (("uncompiled", []), ("compiled", ["callbacks.compile.enabled=true"])):
        records = [
            fmlab_train(["experiment=cifar10_fast", "logger=none", f"seed={seed}", *extra])
            for seed in range(args.runs)
        ]
        acc = sum(r["metrics"]["test/acc"] for r in records) / len(records)
        train_s = sum(r["timing"]["train_s"] for r in records) / len(records)
        print(
            f"| cifar10_fast {variant:<8}| {len(records):4d} | {100 * acc:12.2f}% | "
            f"{train_s:12.2f} | 94.01% in {AIRBENCH94[variant]:.2f} s |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nets", default=ALL_NETS, help="conf/model/ names, timm:<name>")
    parser.add_argument("--batch-size", type=int, help="default 128; 64 with --timm")
    # --timm: 300 steps, as at 100 a run's one-off costs (saving its checkpoint: ~1 s) are a tenth
    parser.add_argument("--steps", type=int, help="default 200; 300 with --timm")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--repeat", type=int, default=1, help="interleaved runs, best reported")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fast", action="store_true", help="cifar10_fast time to accuracy (CUDA)")
    parser.add_argument("--runs", type=int, default=5, help="seeds of cifar10_fast with --fast")
    parser.add_argument(
        "--timm", action="store_true", help="timm's ResNet-18 against its hand loop"
    )
    parser.add_argument(
        "--own-steps",
        type=int,
        help="steps of model=resnet18 with --timm (default: --steps on "
        "CUDA, a tenth of it on the CPU, where it costs 15× timm's)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.batch_size = args.batch_size or (64 if args.timm else 128)
    args.steps = args.steps or (300 if args.timm else 200)
    if args.child:
        print(json.dumps(hand_loop(args.nets, args.batch_size, args.steps, args.device, args.seed)))
        return

    import torch

    data_dir = os.environ.get("FMLAB_DATA_DIR", "data")
    if not (Path(data_dir) / "cifar-10-batches-py").is_dir():
        sys.exit(f"No cifar-10-batches-py in {data_dir}: set FMLAB_DATA_DIR to its parent folder.")
    if args.fast:
        if not torch.cuda.is_available():
            sys.exit("--fast measures cifar10_fast on a GPU, and CUDA is not available here.")
        time_to_accuracy(args)
        return
    devices = {"auto": ["cpu"] + ["cuda"] * torch.cuda.is_available()}.get(args.device)
    (timm_table if args.timm else throughput_table)(args, devices or [args.device])


if __name__ == "__main__":
    main()

"""The GPU check: fmlab's GPU recipes measured in one command on a lent accelerator.

Started by scripts/gpu_check.sh once it has installed fmlab and what the machine lacks from .gpu/
(`make gpu-bundle`). Builds the data from the bundle, then runs the parts, each in fresh processes
with its own time limit, all within 9 minutes of the wrapper's start; a part that fails or runs
out of time is reported as such and the others go on:
  1. airbench94 (scripts/bench_airbench.py) and experiment=cifar10_fast, eager and compiled, each
     to its test accuracy, times side by side;
  2. experiment=gpt_shakespeare_char to its val loss, with ms/iter, tokens/s and MFU;
  3. scripts/bench_vision.py's CUDA rows for ResNet-18, ResNet-20 and ViT;
  4. cifar10_fast with compile switched on, and with bf16 and channels-last each switched off.
GPT runs first, while CIFAR-10 is decoded on one CPU core beside it. Writes gpu_report.md,
gpu_check.json (every run's record), gpu_check.log (every part's output) and gpu_runs.tar.gz (the
run folders without checkpoints) into $OUT when set, else into the work folder, and prints the
report last; exits non-zero when a part failed or ran out of time. ``--cpu-smoke``: the same on
the CPU with every part shrunk to seconds.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tarfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import gpu_report

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / ".gpu" / "data"
MIN_PART_S = 20  # a part is not started with less time than this left
CIFAR_PARTS = (
    "airbench94",
    "fast",
    "fast_compiled",
    "vision",
    "fast_fp32",
    "fast_no_channels_last",
)


@dataclass(frozen=True)
class Mode:
    name: str
    budget_s: int  # the whole check, from the wrapper's start (installs included)
    accelerator: str  # trainer.accelerator
    limits_s: dict[str, int]  # each part's own limit
    fast: tuple[str, ...] = ()  # overrides of every cifar10_fast run
    compile: tuple[str, ...] = ("callbacks.compile.enabled=true",)
    gpt: tuple[str, ...] = ()
    vision: tuple[str, ...] = ()  # bench_vision.py's arguments
    airbench_runs: int = 3


# Limits are estimates for an H200 (none has been measured yet); the 9 minutes keep a minute in
# hand of the 10 that one command may run there. The compiled run pays inductor for the training
# shapes (the last batch of an epoch is smaller) and for testing: a minute or more.
GPU = Mode(
    name="gpu",
    budget_s=540,
    accelerator="gpu",
    limits_s={
        "cifar10_build": 120,
        "gpt": 240,
        "airbench94": 75,
        "fast": 90,
        "fast_compiled": 180,
        "vision": 100,
        "fast_fp32": 80,
        "fast_no_channels_last": 75,
    },
    # nanoGPT's 5000 iterations take about 3 minutes on an A100. Stopped at 3 min 20 s whatever
    # happens, so that a slow run still ends with a record (its steps say how far it got).
    gpt=("trainer.max_time=00:00:03:20",),
    vision=("--device", "cuda", "--nets", "resnet18,resnet20,vit", "--steps", "100"),
)
SMOKE = Mode(
    name="cpu-smoke",
    budget_s=420,
    accelerator="cpu",
    limits_s=dict.fromkeys(GPU.limits_s, 150),
    fast=(
        "trainer.max_steps=2",
        "data.batch_size=16",
        "data.eval_batch_size=250",
        "+trainer.limit_test_batches=1",
        "data.pin_memory=false",
    ),
    # Dynamo captures the graphs; inductor's code generation would take minutes on two cores.
    compile=("callbacks.compile.enabled=true", "++callbacks.compile.backend=eager"),
    gpt=(
        "trainer.max_steps=4",
        "data.batch_size=4",
        "data.block_size=32",
        "model.n_layer=1",
        "model.n_head=2",
        "model.n_embd=32",
        "trainer.val_check_interval=2",
        "+trainer.limit_val_batches=2",
        "scheduler.lr_lambda.warmup_iters=1",
        "scheduler.lr_lambda.lr_decay_iters=4",
    ),
    vision=("--device", "cpu", "--nets", "resnet20", "--steps", "2", "--batch-size", "8"),
    airbench_runs=0,
)


class Check:
    """Runs the parts one after another under one deadline; each part's output goes to its log."""

    def __init__(self, mode: Mode, work: Path, started: float) -> None:
        self.mode, self.work = mode, work
        self.deadline = started + mode.budget_s
        self.data, self.runs, self.logs = work / "data", work / "runs", work / "logs"
        for folder in (self.runs, self.logs):  # a run folder left from before would be resumed
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
        self.scripts = Path(sysconfig.get_path("scripts"))  # where pip put fmlab-train
        self.env = {
            **os.environ,
            "FMLAB_DATA_DIR": str(self.data),
            "FMLAB_ROOT": str(work),
            "PYTHONUNBUFFERED": "1",
        }
        self.parts: dict[str, dict] = {}

    def start(self, name: str, cmd: list) -> tuple[subprocess.Popen, float]:
        print(f"[{name}] {' '.join(map(str, cmd))}", flush=True)
        with open(self.logs / f"{name}.log", "w") as log:  # the child keeps its own descriptor
            proc = subprocess.Popen(
                [str(c) for c in cmd],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=ROOT,
                start_new_session=True,  # its own process group: a timeout ends its workers too
            )
        return proc, time.time()

    def finish(self, name: str, started: tuple[subprocess.Popen, float]) -> dict:
        """Wait for a started part within its limit and the deadline; its entry in the report."""
        proc, started_at = started
        end = min(started_at + self.mode.limits_s[name], self.deadline)
        try:
            code = proc.wait(timeout=max(end - time.time(), 0))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            status, note = "timeout", f"stopped after {end - started_at:.0f} s, its time limit"
        else:
            status = "ok" if code == 0 else "failed"
            note = "" if code == 0 else f"exit {code}: {error_line(self.logs / f'{name}.log')}"
        seconds = time.time() - started_at
        part = {"status": status, "seconds": round(seconds, 1), "note": note}
        part["limit_s"] = self.mode.limits_s[name]
        print(f"[{name}] {status} in {seconds:.0f} s {note}", flush=True)
        self.parts[name] = part
        return part

    def run(self, name: str, cmd: list) -> dict:
        left = self.deadline - time.time()
        if left < MIN_PART_S:
            return self.skip(name, f"{max(left, 0):.0f} s left of the {self.mode.budget_s} s")
        return self.finish(name, self.start(name, cmd))

    def fmlab(self, name: str, overrides: tuple[str, ...]) -> dict:
        folder = self.runs / name
        part = self.run(name, [self.scripts / "fmlab-train", *overrides, f"hydra.run.dir={folder}"])
        if (folder / "results.json").is_file():
            part["record"] = json.loads((folder / "results.json").read_text())
        return part

    def skip(self, name: str, why: str) -> dict:
        print(f"[{name}] skipped: {why}", flush=True)
        self.parts[name] = {"status": "skipped", "seconds": 0, "note": why}
        return self.parts[name]


def error_line(log: Path) -> str:
    """What a failed part said last about its error (progress bars and warnings come after)."""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower() or "exception" in line.lower()]
    return (errors or lines or ["no output"])[-1][:300]


def start_data(check: Check) -> tuple[subprocess.Popen, float] | None:
    """tiny-shakespeare where the text data looks for it; CIFAR-10 decoded from the bundle's
    JPEG archive by its own build.py, in the background (None: already built by an earlier run)."""
    text = check.data / "tinyshakespeare" / "input.txt"
    text.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(BUNDLE / "tinyshakespeare" / "input.txt", text)
    if (check.data / ".cifar10_built").is_file():
        return None
    build = BUNDLE / "cifar10" / "build.py"  # it reads the archive beside it
    return check.start("cifar10_build", [sys.executable, build, check.data])


def fmlab_runs(mode: Mode) -> dict[str, tuple[str, ...]]:
    """Every fmlab-train run of the check by part name: its overrides, all but the run folder."""
    fast = ("experiment=cifar10_fast", *mode.fast)
    runs = {
        "gpt": ("experiment=gpt_shakespeare_char", *mode.gpt),
        "fast": fast,
        "fast_compiled": (*fast, *mode.compile),
        "fast_fp32": (*fast, "trainer.precision=32-true"),
        "fast_no_channels_last": (*fast, "callbacks.channels_last=null"),
    }
    # CSV: the machine has no wandb. The accelerator named, so that a run never falls back quietly.
    where = ("logger=csv", f"trainer.accelerator={mode.accelerator}")
    return {name: (*overrides, *where) for name, overrides in runs.items()}


def run_parts(check: Check, build: tuple[subprocess.Popen, float] | None) -> None:
    mode, runs = check.mode, fmlab_runs(check.mode)
    check.fmlab("gpt", runs["gpt"])
    if build is not None:
        if check.finish("cifar10_build", build)["status"] != "ok":
            for name in CIFAR_PARTS:
                check.skip(name, "no CIFAR-10: its build failed")
            return
        (check.data / ".cifar10_built").touch()
    airbench_json = check.work / "airbench94.json"
    airbench_json.unlink(missing_ok=True)
    script = ROOT / "scripts" / "bench_airbench.py"
    cmd = [sys.executable, script, "--runs", mode.airbench_runs, "--json", airbench_json]
    part = check.run("airbench94", [*cmd, "--work", check.work / "airbench"])
    if airbench_json.is_file():
        part["result"] = json.loads(airbench_json.read_text())
        if part["result"]["status"] != "ok":
            part.update(status=part["result"]["status"], note=part["result"]["note"])
    check.fmlab("fast", runs["fast"])
    check.fmlab("fast_compiled", runs["fast_compiled"])
    part = check.run("vision", [sys.executable, ROOT / "scripts" / "bench_vision.py", *mode.vision])
    if (check.logs / "vision.log").is_file():
        part["output"] = (check.logs / "vision.log").read_text(errors="replace")
    check.fmlab("fast_fp32", runs["fast_fp32"])
    check.fmlab("fast_no_channels_last", runs["fast_no_channels_last"])


def write_records(check: Check, out: Path, environment: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    summary = {"mode": check.mode.name, "environment": environment, "parts": check.parts}
    (out / "gpu_check.json").write_text(json.dumps(summary, indent=1, default=str))
    with open(out / "gpu_check.log", "w") as log:  # the tail of each: what comes back is bounded
        for path in sorted(check.logs.glob("*.log"), key=lambda p: p.stat().st_mtime):
            log.write(f"===== {path.stem}\n{path.read_text(errors='replace')[-2_000_000:]}\n")
    with tarfile.open(out / "gpu_runs.tar.gz", "w:gz") as tar:
        tar.add(check.runs, "runs", filter=lambda m: None if "checkpoints" in m.name else m)


def environment() -> dict:
    """fmlab's record of the machine (packages, git, GPUs), with CUDA, cuDNN and airbench."""
    import torch

    from fmlab.run.record import environment

    env = environment()
    cudnn = torch.backends.cudnn.version()  # e.g. 92400 for 9.24.0
    cudnn = cudnn and f"{cudnn // 10000}.{cudnn % 10000 // 100}.{cudnn % 100}"
    env.update(cuda=torch.version.cuda, cudnn=cudnn)
    try:
        env["packages"]["airbench"] = metadata.version("airbench")
    except metadata.PackageNotFoundError:
        env["packages"]["airbench"] = None
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="data, runs and logs")
    parser.add_argument("--started", type=float, default=time.time(), help="the wrapper's start")
    parser.add_argument("--cpu-smoke", action="store_true", help="every part shrunk, on the CPU")
    args = parser.parse_args()
    check = Check(SMOKE if args.cpu_smoke else GPU, args.work.resolve(), args.started)
    setup_s = time.time() - args.started

    run_parts(check, start_data(check))
    # Only after the runs: reading the GPUs' names initialises CUDA in this process.
    env = environment()
    out = Path(os.environ.get("OUT") or check.work)
    # The records first: GPU time is scarce, and a report that fails must not lose them.
    write_records(check, out, env)
    times_s = (setup_s, time.time() - args.started, check.mode.budget_s)
    report = gpu_report.render(check.mode.name, check.parts, env, times_s)
    (out / "gpu_report.md").write_text(report)
    print(f"\nwritten to {out}: gpu_report.md, gpu_check.json, gpu_check.log, gpu_runs.tar.gz\n")
    print(report)
    broken = [name for name, part in check.parts.items() if part["status"] in ("failed", "timeout")]
    if broken:
        sys.exit(f"gpu_check: {', '.join(broken)} did not finish (see the Parts table above)")


if __name__ == "__main__":
    main()

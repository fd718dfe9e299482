"""The GPU check end to end on the CPU (`scripts/gpu_check.sh --cpu-smoke`): the bundle made from
../shared, then, in a copy of the repo holding only what travels to the accelerator machine (the
files git would commit, and the bundle), with no ../shared, no data folder and no network: the
installs into a stand-in for the machine's Python, the data build, every part and the report."""

import dataclasses
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from fmlab.config.checks import check_config

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("FMLAB_SHARED") or ROOT.parent / "shared")
PARTS = ["gpt", "cifar10_build", "airbench94", "fast", "fast_compiled", "vision"]
PARTS += ["fast_fp32", "fast_no_channels_last"]
DEAD_PROXY = "http://127.0.0.1:9"  # nothing listens there: any download fails at once


def copy_of_repo(dest: Path) -> Path:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    )
    for name in filter(None, listed.stdout.decode().split("\0")):
        if (ROOT / name).is_file():  # a tracked file deleted in the work tree is not there
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest


def offline_env(**extra: str) -> dict:
    """This environment less whatever points at ../shared, data, a source tree or a package
    index; downloads through a proxy that refuses them."""
    dropped = ("FMLAB_SHARED", "FMLAB_DATA_DIR", "PYTHONPATH", "PIP_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        env[name] = DEAD_PROXY
    env.update(NO_PROXY="", no_proxy="", HF_HUB_OFFLINE="1", **extra)
    return env


@pytest.mark.slow  # 90-115 s: .ci/run runs it after `make test`
def test_cpu_smoke_of_the_gpu_check(tmp_path):
    if not (SHARED / "data" / "cifar10" / "cifar10-jpeg-q75.tar.gz").is_file():
        pytest.skip(f"needs the CIFAR-10 archive of ../shared: {SHARED} has none (FMLAB_SHARED)")
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout: what travels is what git would commit")
    repo = copy_of_repo(tmp_path / "repo")
    bundle = subprocess.run(
        ["bash", "scripts/gpu_bundle.sh", str(repo / ".gpu")],
        cwd=ROOT,
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
    )
    assert bundle.returncode == 0, bundle.stdout + bundle.stderr
    size = sum(f.stat().st_size for f in (repo / ".gpu").rglob("*") if f.is_file())
    assert size < 40 * 2**20

    out, work = tmp_path / "out", tmp_path / "work"
    env = offline_env(GPU_CHECK_PYTHON=sys.executable, GPU_CHECK_WORK=str(work), OUT=str(out))
    proc = subprocess.run(
        ["bash", "scripts/gpu_check.sh", "--cpu-smoke"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]

    names = ["gpu_check.json", "gpu_check.log", "gpu_report.md", "gpu_runs.tar.gz"]
    assert sorted(p.name for p in out.iterdir()) == names
    summary = json.loads((out / "gpu_check.json").read_text())
    parts = summary["parts"]
    assert list(parts) == PARTS
    for name in PARTS:
        expected = "skipped" if name == "airbench94" else "ok"  # airbench runs on CUDA only
        assert parts[name]["status"] == expected, (name, parts[name]["note"])
    assert parts["airbench94"]["result"]["test_images"] == 10_000  # its loader read our files

    # The stand-in had what the bundle brought and lacked what the machine lacks.
    packages = summary["environment"]["packages"]
    assert packages["hydra-core"] == "1.3.8" and packages["airbench"] == "0.1.8"
    assert packages["wandb"] is None
    records = {name: parts[name]["record"] for name in PARTS if "record" in parts[name]}
    assert set(records) == {"gpt", "fast", "fast_compiled", "fast_fp32", "fast_no_channels_last"}
    for record in records.values():  # the installed fmlab ran on the data built from the bundle
        assert record["config"]["paths"]["data_dir"] == str((work / "data").resolve())
    assert records["fast"]["data"]["folder"].startswith(str(work / "data"))
    config = {name: record["config"] for name, record in records.items()}
    assert config["fast"]["trainer"]["precision"] == "bf16-mixed"
    assert config["fast_fp32"]["trainer"]["precision"] == "32-true"
    assert config["fast"]["callbacks"]["channels_last"] is not None
    assert config["fast_no_channels_last"]["callbacks"]["channels_last"] is None
    assert config["fast_compiled"]["callbacks"]["compile"]["enabled"]
    assert records["gpt"]["metrics"]["val/loss"] > 0

    report = (out / "gpu_report.md").read_text()
    for title in ("## 1. cifar10_fast", "## 2. gpt_shakespeare_char", "## 3. Vision", "## 4."):
        assert title in report
    assert "| cpu    | resnet20" in report  # bench_vision's own row
    assert proc.stdout.rstrip().endswith(report.rstrip())  # the report is printed last


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("mode", ["GPU", "SMOKE"])
def test_every_run_of_the_check_composes(compose_cfg, mode):
    """The GPU's overrides are never run here: a typo in them would cost a lent machine."""
    sys.modules["gpu_report"] = load_script("gpu_report")  # gpu_check imports it by name
    gpu_check = load_script("gpu_check")
    runs = gpu_check.fmlab_runs(getattr(gpu_check, mode))
    for name, overrides in runs.items():
        cfg = compose_cfg("train", list(overrides))
        check_config(OmegaConf.to_container(cfg, resolve=True))  # every key a constructor's
        assert cfg.logger.keys() == {"csv"}, name
    assert set(runs) | {"cifar10_build", "airbench94", "vision"} == set(PARTS)


def test_a_part_past_its_limit_is_stopped_with_its_workers_and_the_rest_go_on(tmp_path):
    sys.modules["gpu_report"] = load_script("gpu_report")
    gpu_check = load_script("gpu_check")
    limits = {"stuck": 1, "broken": 30, "late": 30}
    mode = dataclasses.replace(gpu_check.SMOKE, limits_s=limits, budget_s=60)
    check = gpu_check.Check(mode, tmp_path, time.time())
    pid_file = tmp_path / "worker.pid"
    stuck = check.run("stuck", ["bash", "-c", f"sleep 60 & echo $! >{pid_file}; wait"])
    assert stuck["status"] == "timeout" and stuck["seconds"] < 10
    worker = int(pid_file.read_text())
    for _ in range(50):  # the worker went with it (it may linger a moment as a zombie)
        if not Path(f"/proc/{worker}").exists() or "Z" in Path(f"/proc/{worker}/stat").read_text():
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"the stuck part's worker {worker} still runs")

    fail = "import sys; print('RuntimeError: no GPU'); print('Epoch 0: 0%|'); sys.exit(3)"
    broken = check.run("broken", [sys.executable, "-c", fail])
    assert broken["status"] == "failed" and broken["note"] == "exit 3: RuntimeError: no GPU"
    check.deadline = time.time() + 5  # less than a part needs: not started at all
    assert check.run("late", ["true"])["status"] == "skipped"
    assert list(check.parts) == ["stuck", "broken", "late"]


def fmlab_part(config: dict, train_s: float, steps: int, **metrics) -> dict:
    timing = {"train_s": train_s, "train_steps": steps}
    record = {"config": config, "metrics": metrics, "timing": timing, "data": {"vocab_size": 65}}
    return {"status": "ok", "seconds": train_s + 20, "note": "", "record": record}


def test_the_report_of_a_gpu_run(compose_cfg):
    """What the CPU smoke cannot reach: airbench's row, MFU on a known GPU, statuses."""
    report = load_script("gpu_report")
    gpt_cfg = compose_cfg("train", ["experiment=gpt_shakespeare_char", "logger=csv"])
    fast_cfg = compose_cfg("train", ["experiment=cifar10_fast", "logger=csv"])
    gpt_cfg, fast_cfg = (OmegaConf.to_container(c, resolve=True) for c in (gpt_cfg, fast_cfg))
    gpt = fmlab_part(gpt_cfg, 100.0, 5000, **{"val/loss": 1.4712})  # 20 ms/iter
    assert round(report.gpt_params(gpt["record"]) / 1e6, 2) == 10.65  # nanoGPT's printed count
    parts = {
        "gpt": gpt,
        "airbench94": {
            "status": "ok",
            "seconds": 30,
            "note": "",
            "result": {"status": "ok", "runs": 3, "mean_test_acc": 0.9398, "mean_train_s": 3.1},
        },
        "fast": fmlab_part(fast_cfg, 10.0, 2352, **{"test/acc": 0.9401}),
        "fast_compiled": fmlab_part(fast_cfg, 8.0, 2352, **{"test/acc": 0.94}),
        "vision": {"status": "ok", "seconds": 60, "note": "", "output": "noise\n| cuda | vit |"},
        "fast_fp32": {
            "status": "timeout",
            "seconds": 80,
            "note": "stopped after 80 s, its time limit",
        },
    }
    env = {
        "packages": {"python": "3.12.3", "torch": "2.11.0", "hydra-core": "1.3.8"},
        "hardware": {"gpus": ["NVIDIA H200"], "cpu": "x86_64", "cpu_count": 16},
        "git": {"commit": "0123456789abcdef", "dirty": False},
        "cuda": "13.0",
        "cudnn": "9.10.2",
    }
    text = report.render("gpu", parts, env, (15.0, 420.0, 540))

    assert "- GPU: NVIDIA H200; CUDA 13.0, cuDNN 9.10.2" in text
    assert "- 420 s of the check's 540 s (installs 15 s)" in text
    assert "| airbench94, mean of 3 | 93.98% | 3.10 | — | 30 | ok |" in text
    assert "| cifar10_fast, eager | 94.01% | 10.00 | 120422 | 30 | ok |" in text  # 2352 × 512 / 10
    # (6N + 12·L·H·Q·T)·T·B FLOPs an iteration, at 20 ms, over the H200's 989 TFLOP/s
    assert "| gpt_shakespeare_char | 5000 | 1.4712 | 20.0 | 819,200 | 5.9% | 120 | ok |" in text
    assert "| cuda | vit |" in text and "noise" not in text
    assert "| compile on | ✓ | ✓ | ✓ | 94.00% | 8.00 | 150528 | 1.25× | ok |" in text
    assert "| bf16 off (fp32) | – | ✓ | – | — | — | — | — | timeout: stopped after 80 s" in text
    assert "| channels-last off | ✓ | – | – | — | — | — | — | skipped |" in text
    assert "every part shrunk" not in text

"""The command line answers before the heavy libraries load: --help, --cfg, --info and every TAB of
Hydra's shell completion run fmlab-train's startup alone."""

import json
import os
import subprocess
import sys

import pytest

# Runs fmlab-train's console-script function in a fresh interpreter, then reports which of the heavy
# modules that startup imported.
PROBE = """
import contextlib, io, json, sys
sys.argv = ["fmlab-train", *json.loads(sys.argv[1])]
from fmlab.cli import train
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        train()
    except SystemExit:
        pass
heavy = ("torch", "lightning", "torchmetrics", "wandb", "optuna", "submitit")
heavy += ("transformers", "peft")
print(json.dumps({"loaded": [m for m in heavy if m in sys.modules], "out": out.getvalue()}))
"""


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["--cfg", "job", "experiment=resnet20_cifar10"],
        ["--info"],
        ["-sc", "query=bash"],
    ],
    ids=["help", "cfg", "info", "completion"],
)
def test_startup_imports_neither_torch_nor_lightning(args, tmp_path):
    env = {**os.environ, "COMP_LINE": "fmlab-train optimizer=a", "COMP_POINT": "26"}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["loaded"] == [], result["loaded"]
    expected = {
        "--help": "fmlab-train is powered by Hydra",
        "--cfg": "ResNetCifar",
        "--info": "Config search",
    }
    assert expected.get(args[0], "adamw") in result["out"]
    if args[0] == "--help":  # its groups, not fmlab-reproduce's table specs (conf/table/)
        groups = [line.partition(":")[0] for line in result["out"].splitlines() if ": " in line]
        assert {"experiment", "optimizer", "sweep"} <= set(groups) and "table" not in groups


def test_a_sweep_with_cfg_is_one_line_and_exit_2(tmp_path):
    """Hydra takes -m and --cfg together for a ValueError with its traceback; fmlab says so."""
    command = [sys.executable, "-c", "from fmlab.cli import train; train()", "-m", "--cfg", "job"]
    proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "fmlab-train: error: Only one of --run, --multirun" in proc.stderr
    assert "without -m" in proc.stderr

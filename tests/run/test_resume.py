"""Resuming through the real CLI: a run stopped cleanly, crashed by an exception and SIGKILLed
mid-epoch, each time re-run with the same command, ends exactly like an uninterrupted run."""

import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import cli_command, run_cli

TESTS = Path(__file__).parents[1]
TESTS_ENV = {"PYTHONPATH": str(TESTS)}  # the faults of faults.py
STEPS_PER_EPOCH = 20  # 160 training images at batch 8


def args(data: Path, run_dir: Path, *extra: str) -> list[str]:
    """A deterministic CPU run with augmentation (so the RNG matters) and a step checkpoint every
    7 steps; 3 epochs of 20 steps."""
    return [
        "fmlab-train",
        f"paths.data_dir={data}",
        f"hydra.run.dir={run_dir}",
        "data.val_size=40",
        "data.batch_size=8",
        "trainer.max_epochs=3",
        "trainer.accelerator=cpu",
        "trainer.deterministic=true",
        "trainer.log_every_n_steps=5",
        "callbacks.step_checkpoint.every_n_train_steps=7",
        "optimizer.lr=0.02",
        "seed=3",
        *extra,
    ]


def fault(name: str, kind: str, step: int) -> list[str]:
    return [f"+callbacks.{name}._target_=faults.{kind}", f"+callbacks.{name}.step={step}"]


def record(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def metrics(run_dir: Path) -> dict:
    """Every metric but the learning rate, which LearningRateMonitor logs only at epoch starts
    (a run resumed mid-epoch has none to report until the next one)."""
    return {k: v for k, v in record(run_dir)["metrics"].items() if not k.startswith("lr-")}


def weights(run_dir: Path) -> dict:
    path = run_dir / "checkpoints" / "last.ckpt"
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def newest_checkpoint_step(run_dir: Path) -> int:
    newest = max(run_dir.rglob("*.ckpt"), key=lambda p: p.stat().st_mtime)
    return torch.load(newest, map_location="cpu", weights_only=True)["global_step"]


@pytest.fixture(scope="module")
def reference(synthetic_data, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("reference")
    run_cli(*args(synthetic_data, root / "run", "logger=csv"), cwd=root)
    return root / "run"


def test_same_config_and_seed_give_identical_metrics(reference, synthetic_data, tmp_path):
    run_cli(*args(synthetic_data, tmp_path / "again", "logger=csv"), cwd=tmp_path)
    assert record(tmp_path / "again")["metrics"] == record(reference)["metrics"]
    assert record(reference)["config"]["trainer"]["deterministic"] is True
    first, second = weights(reference), weights(tmp_path / "again")
    assert all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.slow  # many fmlab-train runs: .ci/run runs it after `make test`
def test_stopped_crashed_and_killed_run_resumes_exactly(reference, synthetic_data, tmp_path):
    run_dir = tmp_path / "run"
    faults = [*fault("crash", "RaiseAt", 30), *fault("kill", "KillAt", 47)]
    env = {"PYTHONPATH": str(TESTS)}

    csv = "logger=csv"  # W&B only in the last two attempts: it costs seconds to start

    # 1. A clean stop after one epoch; the same run is then continued to three.
    run_cli(*args(synthetic_data, run_dir, "trainer.max_epochs=1", csv), cwd=tmp_path)
    assert record(run_dir)["timing"]["train_steps"] == STEPS_PER_EPOCH
    # 2. An exception at step 30: the step-28 checkpoint is the newest, mid-epoch.
    proc = run_cli(*args(synthetic_data, run_dir, *faults, csv), cwd=tmp_path, env=env, check=False)
    assert proc.returncode == 1 and "injected failure" in proc.stderr
    assert newest_checkpoint_step(run_dir) == 28
    # 3. Re-run: resumes at 28, is SIGKILLed at step 47 (newest checkpoint: step 42, mid-epoch).
    proc = run_cli(*args(synthetic_data, run_dir, *faults), cwd=tmp_path, env=env, check=False)
    assert proc.returncode == -signal.SIGKILL
    assert newest_checkpoint_step(run_dir) == 42 and 42 % STEPS_PER_EPOCH != 0
    assert record(run_dir)["timing"]["train_steps"] == STEPS_PER_EPOCH  # still the first result
    # 4. Re-run: resumes at 42 and finishes.
    run_cli(*args(synthetic_data, run_dir, *faults), cwd=tmp_path, env=env)

    assert metrics(run_dir) == metrics(reference)
    assert record(run_dir)["timing"]["train_steps"] == 3 * STEPS_PER_EPOCH
    ours, theirs = weights(run_dir), weights(reference)
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)

    # Every attempt logged into the same W&B run: one offline folder per attempt, one id.
    wandb_id = (run_dir / "wandb_run_id.txt").read_text().strip()
    attempts = sorted(run_dir.glob("wandb/offline-run-*"))
    assert len(attempts) == 2 and all(p.name.endswith(f"-{wandb_id}") for p in attempts)


@pytest.fixture
def small_disk(tmp_path):
    """A 1.2 MB filesystem: room for two checkpoints of this run (0.5 MB each), not three."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=1200k", "tmpfs", str(disk)]
    try:
        proc = subprocess.run(mount, capture_output=True, text=True, timeout=30)
    except OSError as err:
        proc = subprocess.CompletedProcess(mount, 1, "", str(err))
    if proc.returncode != 0:
        pytest.skip(f"a small tmpfs cannot be mounted here (needs root): {proc.stderr.strip()}")
    yield disk
    subprocess.run(["umount", str(disk)], check=True, timeout=30)


@pytest.mark.slow  # many fmlab-train runs: .ci/run runs it after `make test`
def test_a_full_disk_stops_the_run_by_name_and_the_same_command_continues(
    reference, synthetic_data, small_disk, tmp_path
):
    run_dir = small_disk / "run"
    command = args(synthetic_data, run_dir, "logger=csv")
    proc = run_cli(*command, cwd=tmp_path, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "Traceback" not in output, output[-3000:]
    (message,) = [line for line in output.splitlines() if "[ERROR]" in line]
    newest = max(run_dir.glob("checkpoints/*.ckpt"), key=lambda p: p.stat().st_mtime)
    step = torch.load(newest, weights_only=True)["global_step"]
    assert f"no space left on the disk of {run_dir / 'checkpoints'}: writing" in message
    assert re.search(r"needs 5\d\d,\d\d\d bytes \(.*\) and [\d,]+ bytes .* are free", message)
    assert f"The newest intact checkpoint is {newest} (step {step})" in message
    assert "run the same command again to continue from it" in message
    assert not (run_dir / "results.json").exists()

    subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True, timeout=30)
    run_cli(*command, cwd=tmp_path)  # the same command, with room again
    assert metrics(run_dir) == metrics(reference)
    ours, theirs = weights(run_dir), weights(reference)
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)


@pytest.mark.slow  # many fmlab-train runs: .ci/run runs it after `make test`
def test_a_second_process_on_a_running_run_is_refused_and_the_first_ends_as_if_alone(
    reference, synthetic_data, tmp_path
):
    run_dir, go = tmp_path / "run", tmp_path / "go"
    held = ["+callbacks.hold._target_=faults.WaitFor", f"+callbacks.hold.path={go}", "logger=csv"]
    command, env = cli_command(*args(synthetic_data, run_dir, *held), cwd=tmp_path, env=TESTS_ENV)
    with open(tmp_path / "first.log", "w") as out:
        first = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=out, stderr=out)
        try:
            lock = run_dir / "run.lock"
            deadline = time.monotonic() + 300
            while not (lock.is_file() and lock.read_text()) and first.poll() is None:
                assert time.monotonic() < deadline, "the first run never took its folder"
                time.sleep(0.2)
            # The same command again, as a re-launched sweep or a SLURM requeue would run it.
            second = run_cli(*command_args(command), cwd=tmp_path, env=TESTS_ENV, check=False)
        finally:
            go.touch()  # the first run trains on
            assert first.wait(timeout=600) == 0, (tmp_path / "first.log").read_text()[-3000:]
    output = second.stdout + second.stderr
    assert second.returncode == 1 and "Traceback" not in output, output[-3000:]
    assert f"the run folder {run_dir} is in use: pid {first.pid} on " in output
    assert "Resuming" not in output and not (run_dir / "run.lock").read_text()
    assert metrics(run_dir) == metrics(reference)
    assert record(run_dir)["timing"]["train_steps"] == 3 * STEPS_PER_EPOCH
    ours, theirs = weights(run_dir), weights(reference)
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)


def test_the_lock_of_a_dead_process_is_taken_over(reference, synthetic_data, tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], text=True,
                          capture_output=True, check=True)  # fmt: skip
    run_dir = reference  # complete: re-running it only takes the lock and finds its record
    holder = {"host": socket.gethostname(), "pid": int(dead.stdout), "started": "yesterday",
              "identity": "another boot:1", "command": "fmlab-train (killed with -9)"}  # fmt: skip
    (run_dir / "run.lock").write_text(json.dumps(holder))
    before = (run_dir / "results.json").read_bytes()
    proc = run_cli(*args(synthetic_data, run_dir, "logger=csv"), cwd=tmp_path)
    output = proc.stdout + proc.stderr
    assert f"Took over the run folder {run_dir} from pid {int(dead.stdout)} on" in output
    assert "This run is already complete" in output
    assert (run_dir / "results.json").read_bytes() == before


def command_args(command: list[str]) -> list[str]:
    """run_cli's arguments for a command line from cli_command."""
    return [Path(command[0]).name, *command[1:]]


def test_a_complete_run_is_not_run_again(reference, synthetic_data, tmp_path):
    before = (reference / "results.json").read_bytes()
    proc = run_cli(*args(synthetic_data, reference, "logger=csv"), cwd=tmp_path)
    assert "This run is already complete" in proc.stdout + proc.stderr
    assert (reference / "results.json").read_bytes() == before


def test_every_checkpoint_loads_as_plain_data(reference):
    for path in reference.rglob("*.ckpt"):
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        assert checkpoint["hyper_parameters"]["config"]["seed"] == 3
        assert "RandomState" in "".join(checkpoint["callbacks"])  # the RNGs travel with it

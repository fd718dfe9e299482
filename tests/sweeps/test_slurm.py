"""Pre-emption on the real local SLURM cluster (../shared/slurm/start.sh): on the warning signal
(USR1) the run saves its state at the end of the step into the run folder's last.ckpt and
requeues the job; the requeued job, the same script with the same run_id, finds it there and
finishes from it, with every step trained exactly once."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

TESTS = Path(__file__).parents[1]
pytestmark = pytest.mark.slow  # about a minute alone: two job starts and a requeue


def slurm(*args: str) -> str:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=True).stdout


@pytest.fixture(scope="module")
def cluster():
    if shutil.which("sbatch") is None:
        pytest.skip("needs SLURM: run ../shared/slurm/start.sh first")
    try:
        slurm("sinfo", "-h")
    except (subprocess.SubprocessError, OSError) as err:
        pytest.skip(f"SLURM is not running ({err}); run ../shared/slurm/start.sh")
    # Jobs of an earlier test (the sweep's array) may still be completing: wait, don't skip.
    wait_for(lambda: "idle" in slurm("sinfo", "-h", "-o", "%T"), 180, "the SLURM node to be idle")


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# The states a job ends in, other than COMPLETED: a requeued job in one of them will not finish.
ENDED_BADLY = {"FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL"}


def job_state(job_id: str) -> str:
    return slurm("squeue", "-h", "-j", job_id, "-t", "all", "-o", "%T").strip()


def old_steps(job_id: str) -> list[str]:
    """The job's slurmstepd processes on this, the only, node (`slurmstepd: [ID.step]`)."""
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    return [line for line in ps.splitlines() if line.startswith(f"slurmstepd: [{job_id}.")]


def slurmd_log() -> str:
    config = slurm("scontrol", "show", "config")
    path = Path(re.search(r"SlurmdLogFile\s*=\s*(\S+)", config).group(1))
    return path.read_text()[-3000:] if path.is_file() else ""


def finished(job_id: str, tmp_path: Path, run_dir: Path) -> bool:
    """Whether the job completed; a job that ended otherwise fails the test at once, with its
    output. SLURM holds a requeued job back for 120 s (Reason=BeginTime): each poll releases it."""
    state = job_state(job_id)
    if state == "PENDING":
        subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"],
                       capture_output=True, timeout=60)  # fmt: skip
    elif state in ENDED_BADLY:  # any other state (REQUEUED, CONFIGURING, ...) may still pass
        output = "".join(p.read_text() for p in sorted(tmp_path.glob("slurm-*.out")))
        log = run_dir / "train.log"
        raise AssertionError(
            f"job {job_id} ended {state}:\n"
            + slurm("scontrol", "show", "job", job_id)
            + output[-4000:]
            + (log.read_text()[-4000:] if log.exists() else "")
            + "\nslurmd's log:\n"
            + slurmd_log()
        )
    return state == "COMPLETED"


def test_preempted_job_saves_requeues_and_finishes_from_its_checkpoint(
    cluster, synthetic_data, tmp_path
):
    run_dir = tmp_path / "logs" / "train" / "runs" / "preempted"
    train = Path(sys.executable).with_name("fmlab-train")
    script = tmp_path / "job.sh"
    script.write_text(
        f"""#!/bin/bash
#SBATCH --job-name=fmlab-preempt
#SBATCH --ntasks=1
#SBATCH --output={tmp_path}/slurm-%j.out
#SBATCH --open-mode=append
#SBATCH --requeue
export WANDB_MODE=offline FMLAB_ROOT={tmp_path} PYTHONPATH={TESTS}
# The same command on every start: run_id fixes the folder the requeued job looks in.
srun {train} run_id=preempted paths.data_dir={synthetic_data} data.val_size=40 \\
  data.batch_size=8 trainer.max_epochs=4 logger=csv \\
  +callbacks.slow._target_=faults.Slow +callbacks.slow.seconds=0.1
"""
    )
    job_id = slurm("sbatch", "--parsable", str(script)).strip().split(";")[0]
    try:
        # Pre-empt once training is under way (the first epoch's checkpoint exists).
        wait_for(lambda: list(run_dir.glob("checkpoints/epoch*.ckpt")), 300, "the first epoch")
        slurm("scancel", "--signal=USR1", job_id)
        log = run_dir / "train.log"
        wait_for(lambda: "Pre-emption signal" in log.read_text(), 60, "the pre-emption checkpoint")
        wait_for(lambda: job_state(job_id) == "PENDING", 60, "the requeue")
        # SLURM holds a requeued job back (Reason=BeginTime) while the old one ends. The node is
        # idle once the batch step ends, but the srun step's slurmstepd can outlive it by seconds;
        # released before that one is gone, the requeued job failed at once, with no output (CI).
        wait_for(lambda: not old_steps(job_id), 180, "the old job's steps to end")
        time.sleep(1)  # and slurmd to clean up after them
        wait_for(lambda: finished(job_id, tmp_path, run_dir), 400, "the requeued job to finish")
    finally:
        subprocess.run(["scancel", job_id], capture_output=True, timeout=60)

    record = json.loads((run_dir / "results.json").read_text())
    assert record["status"] == "complete" and record["timing"]["train_steps"] == 4 * 20
    text = log.read_text()
    (step,) = re.findall(r"Pre-emption signal at step (\d+): saved (\S+)", text)
    assert step[1] == str(run_dir / "checkpoints" / "last.ckpt") and 0 < int(step[0]) < 4 * 20
    assert f"Resuming from {step[1]} (step {step[0]})" in text
    assert "Restarts=1" in slurm("scontrol", "show", "job", job_id)
    output = "".join(p.read_text() for p in tmp_path.glob("slurm-*.out"))
    assert "Traceback" not in output
    assert os.path.getsize(run_dir / "results.json") > 0

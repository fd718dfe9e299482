"""DDP, parallel jobs and SLURM through the real fmlab-train (slow: `.ci/run` runs them after
`make test`, with the one-node cluster of ../shared/slurm/start.sh up)."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import run_cli
from test_sweeps import records, tiny

from fmlab.config.resolvers import cpu_count

pytestmark = pytest.mark.slow
SACCT_SHIM = "/tmp/fmlab-slurm/bin"  # start.sh's sacct stand-in: submitit polls sacct


def test_ddp_alone_and_in_multirun_writes_one_folder_per_job(synthetic_data, tmp_path):
    """Two gloo processes per job: 160 training images give each rank 2 of the 4 batches, and the
    metrics are those of all images (synced across ranks), as a single process evaluates them."""
    args = ["fmlab-train", "trainer=ddp_cpu", "seed=1", "logger=csv", *tiny(synthetic_data)]
    run_cli(*args, f"hydra.run.dir={tmp_path / 'single'}", cwd=tmp_path)
    single = json.loads((tmp_path / "single" / "results.json").read_text())
    assert single["timing"]["train_steps"] == 2 and single["config"]["trainer"]["devices"] == 2
    assert not (tmp_path / "logs").exists()  # rank 1 joined the run's folder, made none
    assert (tmp_path / "single" / "train.log").read_text().count("Results:") == 1

    run_cli("fmlab-eval", f"ckpt_path='{single['tested']}'", f"hydra.run.dir={tmp_path / 'eval'}",
            f"paths.data_dir={synthetic_data}", "logger=none", cwd=tmp_path)  # fmt: skip
    evaluated = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert evaluated["metrics"]["test/acc"] == pytest.approx(single["metrics"]["test/acc"])

    run_cli(args[0], "-m", args[1], "seed=1,2", "sweep_id=ddp", *args[3:], cwd=tmp_path)
    assert [p.name for p in (tmp_path / "logs" / "train" / "multiruns").iterdir()] == ["ddp"]
    jobs = records(tmp_path / "logs" / "train" / "multiruns" / "ddp")
    assert list(jobs) == ["0", "1"] and all(r["timing"]["train_steps"] == 2 for r in jobs.values())
    assert [r["config"]["seed"] for r in jobs.values()] == [1, 2]
    for key in ("train/loss", "val/acc", "test/acc"):  # the job is the single run, rank for rank
        assert jobs["0"]["metrics"][key] == pytest.approx(single["metrics"][key])


def test_parallel_launcher_gives_each_job_a_share_of_the_machine(synthetic_data, tmp_path):
    run_cli(
        "fmlab-train", "-m", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2", "seed=1,2",
        "sweep_id=par", "logger=csv", *tiny(synthetic_data), cwd=tmp_path,
    )  # fmt: skip
    sweep = tmp_path / "logs" / "train" / "multiruns" / "par"
    jobs = records(sweep)
    assert list(jobs) == ["0", "1"] and all(r["status"] == "complete" for r in jobs.values())
    threads = max(1, cpu_count() // 2)
    assert all(r["environment"]["hardware"]["torch_threads"] == threads for r in jobs.values())
    logs = "".join((sweep / job / "train.log").read_text() for job in jobs)
    assert "Parallel slot 0 of 2" in logs and "Parallel slot 1 of 2" in logs


def test_optuna_trials_run_side_by_side_with_the_parallel_launcher(synthetic_data, tmp_path):
    """hydra.sweeper.n_jobs=2: each batch of two trials goes to the parallel launcher at once;
    each job waits at its first step until both have started, so they can only both complete
    side by side."""
    proc = run_cli(
        "fmlab-train", "-m", "hparams_search=convnet_optuna", "hydra.sweeper.n_trials=2",
        "hydra.sweeper.n_jobs=2", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2",
        "sweep_id=par", "logger=csv", *tiny(synthetic_data),
        "+callbacks.meet._target_=faults.Rendezvous", "+callbacks.meet.jobs=2",
        f"+callbacks.meet.folder={tmp_path / 'met'}",
        cwd=tmp_path, env={"PYTHONPATH": str(Path(__file__).parents[1])},
    )  # fmt: skip
    assert (proc.stdout + proc.stderr).count("is launching 2 jobs") == 1
    sweep = tmp_path / "logs" / "train" / "multiruns" / "par"
    jobs = records(sweep)
    assert list(jobs) == ["0", "1"] and all(r["status"] == "complete" for r in jobs.values())
    assert len(list((tmp_path / "met").glob("started-*"))) == 2  # two processes
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert result["trials"] == {"complete": 2}


def slurm_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=30).returncode == 0


@pytest.mark.skipif(not slurm_up(), reason="no SLURM cluster: run ../shared/slurm/start.sh")
def test_slurm_sweep_of_two_ddp_jobs(synthetic_data, tmp_path):
    """A job array of two jobs, each two SLURM tasks that Lightning takes as its DDP ranks."""
    proc = run_cli(
        "fmlab-train", "-m", "hydra/launcher=slurm", "trainer=ddp_cpu", "seed=1,2",
        "sweep_id=slurm", "hydra.launcher.cpus_per_task=1", "hydra.launcher.timeout_min=10",
        "logger=csv", *tiny(synthetic_data), cwd=tmp_path,
        env={"PATH": f"{SACCT_SHIM}{os.pathsep}{os.environ['PATH']}"},
    )  # fmt: skip
    assert "Submitit 'slurm' sweep" in proc.stdout + proc.stderr
    sweep = tmp_path / "logs" / "train" / "multiruns" / "slurm"
    jobs = records(sweep)
    assert list(jobs) == ["0", "1"] and all(r["status"] == "complete" for r in jobs.values())
    assert all(r["timing"]["train_steps"] == 2 for r in jobs.values())  # each rank: half the data
    assert len(list(sweep.glob(".submitit/**/*_log.out"))) == 4  # 2 jobs x 2 tasks
    assert [p.name for p in (tmp_path / "logs" / "train" / "multiruns").iterdir()] == ["slurm"]

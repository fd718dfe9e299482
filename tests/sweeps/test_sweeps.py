"""Sweeps through the real fmlab-train -m: grids, resumed sweeps, Optuna, W&B groups, and the
launcher configs (the SLURM, DDP and parallel runs are in test_sweeps_scale.py)."""

import json
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import run_cli
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf, open_dict
from wandb_files import wandb_records

from fmlab import CONF_DIR
from fmlab.commands.train import optimized_value
from fmlab.config.resolvers import tasks_per_node
from fmlab.errors import FmlabError
from fmlab.run.record import write_json_atomic
from fmlab.sweeps.jobs import finished_record, prepare_job
from hydra_plugins.fmlab_optuna_sweeper.trials import OUTCOME, open_storage

RECORD_KEYS = {"status", "metrics", "optimized_metric", "checkpoints", "timing", "config"}


def tiny(data: Path) -> list[str]:
    """One short epoch on the synthetic CIFAR-10 (160 training, 40 validation, 40 test images)."""
    return [
        f"paths.data_dir={data}",
        "data.val_size=40",
        "data.batch_size=40",
        "trainer.max_epochs=1",
        "callbacks=none",
    ]


def records(sweep: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(sweep.glob("*/results.json"))}


def wandb_runs(path: Path) -> list:
    """The run records of a W&B offline `.wandb` file."""
    return [r.run for r in wandb_records(path) if r.WhichOneof("record_type") == "run"]


def test_the_optimizer_sweep_gives_each_job_its_options_own_keys(synthetic_data, tmp_path):
    """The usage written in conf/sweep/optimizers.yaml, on a recipe whose optimizer has its own
    values (resnet20_cifar10: SGD with He et al.'s decay): every job runs, and each optimizer
    comes with its option file's keys, not the recipe's (AdamW got SGD's momentum and lr 0.1)."""
    shrink = [*tiny(synthetic_data), "trainer.max_steps=1", "logger=none", "test=false"]
    args = ["fmlab-train", "-m", "sweep=optimizers", "experiment=resnet20_cifar10", *shrink]
    run_cli(*args, "sweep_id=opt", cwd=tmp_path)
    jobs = records(tmp_path / "logs" / "train" / "multiruns" / "opt")
    assert [r["status"] for r in jobs.values()] == ["complete", "complete"]
    sgd, adamw = (r["config"]["optimizer"] for r in jobs.values())
    for option, used in (("sgd", sgd), ("adamw", adamw)):
        own = yaml.safe_load((Path(CONF_DIR) / "optimizer" / f"{option}.yaml").read_text())
        assert used == own, option

    # A mistake in the last job is found before the first job trains.
    proc = run_cli(*args, "sweep_id=bad", "++optimizer.momentum=0.5", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "job 1 of 2 (optimizer=adamw" in proc.stderr
    assert "optimizer.momentum is not an argument of AdamW" in proc.stderr
    assert not (tmp_path / "logs" / "train" / "multiruns" / "bad").exists()


@pytest.mark.slow  # many fmlab-train runs: .ci/run runs it after `make test`
def test_grid_writes_every_job_and_resume_skips_them(synthetic_data, tmp_path):
    """sweep=augmentation is a 4-job grid; each job is its own W&B run in the sweep's group; the
    same command with resume_sweep=true trains nothing and leaves every record untouched."""
    args = ["fmlab-train", "-m", "sweep=augmentation", "sweep_id=grid", *tiny(synthetic_data)]
    run_cli(*args, cwd=tmp_path)
    sweep = tmp_path / "logs" / "train" / "multiruns" / "grid"
    first = records(sweep)
    assert list(first) == ["0", "1", "2", "3"]
    assert all(r["status"] == "complete" and RECORD_KEYS <= set(r) for r in first.values())
    grid = {(r["config"]["data"]["crop"], r["config"]["data"]["flip"]) for r in first.values()}
    assert grid == {(True, True), (True, False), (False, True), (False, False)}

    for job in first:
        (run_file,) = (sweep / job / "wandb").glob("offline-run-*/run-*.wandb")
        (run,) = wandb_runs(run_file)
        assert (run.run_group, run.job_type) == ("grid", "train")
        assert "data.crop=" in run.display_name

    stamps = {job: (sweep / job / "results.json").stat().st_mtime_ns for job in first}
    proc = run_cli(*args, "resume_sweep=true", cwd=tmp_path)
    assert records(sweep) == first
    assert {job: (sweep / job / "results.json").stat().st_mtime_ns for job in first} == stamps
    output = proc.stdout + proc.stderr
    assert output.count("Skipping:") == 4 and "Logger wandb" not in output  # nothing was built
    assert all(len(list((sweep / j / "wandb").glob("offline-run-*"))) == 1 for j in first)

    # A changed grid does not overwrite the finished jobs: it is refused, naming what changed.
    proc = run_cli(*args, "resume_sweep=true", "data.batch_size=20", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "data.batch_size" in proc.stdout + proc.stderr
    assert records(sweep) == first


def test_a_sweep_without_validation_resumes_past_its_finished_jobs(synthetic_data, tmp_path):
    """seed_convnet has no validation split: fmlab-train keeps its last weights instead of the
    best val/acc ones (monitor=None), which is derived at run time and so not part of what the
    job is. A finished sweep run again with resume_sweep=true skips every job."""
    args = [
        "fmlab-train", "-m", "sweep=seeds", "sweep_id=seeds", "experiment=seed_convnet",
        f"paths.data_dir={synthetic_data}",
        "data.batch_size=40", "trainer.max_epochs=1", "logger=none",
    ]  # fmt: skip
    run_cli(*args, cwd=tmp_path)
    sweep = tmp_path / "logs" / "train" / "multiruns" / "seeds"
    first = records(sweep)
    assert list(first) == ["0", "1", "2"]
    proc = run_cli(*args, "resume_sweep=true", cwd=tmp_path)
    assert (proc.stdout + proc.stderr).count("Skipping:") == 3
    assert records(sweep) == first


def test_a_study_continued_without_a_sweep_id_keeps_its_trials_in_one_folder(
    synthetic_data, tmp_path
):
    """Without sweep_id, a search's folder is named by its study (train_convnet), not by the time:
    a second command that continues the study adds its trial beside the first ones."""
    args = [
        "fmlab-train", "-m", "hparams_search=convnet_optuna", "logger=none", *tiny(synthetic_data),
    ]  # fmt: skip
    run_cli(*args, "hydra.sweeper.n_trials=1", cwd=tmp_path)
    run_cli(*args, "hydra.sweeper.n_trials=2", cwd=tmp_path)
    (study,) = (tmp_path / "logs" / "train" / "multiruns").iterdir()
    assert study.name == "train_convnet"
    assert [r["optuna"]["trial"] for r in records(study).values()] == [0, 1]


def test_a_search_whose_metric_no_trial_can_log_is_refused_before_training(
    synthetic_data, tmp_path
):
    """seed_convnet has no validation split, and the search optimises val/acc: refused at once,
    naming the fix, with no step trained."""
    proc = run_cli(
        "fmlab-train", "-m", "hparams_search=convnet_optuna", "experiment=seed_convnet",
        "hydra.sweeper.n_trials=2", f"paths.data_dir={synthetic_data}", "logger=none",
        "sweep_id=s", cwd=tmp_path, check=False,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "Traceback" not in output
    assert "optimized_metric='val/acc': this run has no validation split" in output
    assert "data.val_size=5000" in output
    assert not list((tmp_path / "logs").rglob("*.ckpt"))


def test_the_default_metric_is_the_split_a_run_scores_last(compose_cfg):
    assert compose_cfg("train", []).optimized_metric == "test/acc"
    assert compose_cfg("train", ["test=false"]).optimized_metric == "val/acc"


def test_optuna_search_returns_the_metric_and_resumes(synthetic_data, tmp_path):
    """Three trials of the convnet search, each a job with its record; the same command again
    continues the study from its storage (<sweep>/optuna.journal): all trials done, it runs none."""
    args = [
        "fmlab-train",
        "-m",
        "hparams_search=convnet_optuna",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.sampler.n_startup_trials=2",
        "sweep_id=search",
        "logger=csv",
        *tiny(synthetic_data),
    ]
    run_cli(*args, cwd=tmp_path)
    sweep = tmp_path / "logs" / "train" / "multiruns" / "search"
    trials = records(sweep)
    assert len(trials) == 3 and all(r["optimized_metric"] == "val/acc" for r in trials.values())
    assert len({r["config"]["optimizer"]["lr"] for r in trials.values()}) == 3
    assert [r["optuna"] for r in trials.values()] == [
        {"study": "train_convnet", "trial": n, "pruned_epoch": None} for n in range(3)
    ]
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert result["best_value"] == max(r["metrics"]["val/acc"] for r in trials.values())
    assert result["trials"] == {"complete": 3}
    best = trials[str(result["best_trial"]["number"])]
    assert result["best_trial"]["job_dir"] == best["output_dir"]

    stamps = {job: (sweep / job / "results.json").stat().st_mtime_ns for job in trials}
    proc = run_cli(*args, cwd=tmp_path)
    assert "3 of 3 trials ended" in proc.stdout and "Launching" not in proc.stdout
    assert records(sweep) == trials
    assert {job: (sweep / job / "results.json").stat().st_mtime_ns for job in trials} == stamps
    assert yaml.safe_load((sweep / "optimization_results.yaml").read_text()) == result


def test_a_trial_made_to_be_bad_is_pruned_after_its_first_epoch(synthetic_data, tmp_path):
    """The study already holds a trial at val/acc 0.9 every epoch; a trial that cannot learn
    (lr=1e-9) is stopped by the median pruner after epoch 0, its record says so, and the sweeper
    tells Optuna it was pruned."""
    storage = tmp_path / "study.journal"
    study = optuna.create_study(
        study_name="prune", storage=open_storage(str(storage)), direction="maximize"
    )
    study.add_trial(optuna.trial.create_trial(value=0.9, intermediate_values={0: 0.9, 1: 0.9}))
    proc = run_cli(
        "fmlab-train", "-m", "hparams_search=convnet_optuna", "hydra.sweeper.n_trials=2",
        f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=prune",
        "hydra.sweeper.pruner.n_startup_trials=1", "optimizer.lr=1e-9", "sweep_id=prune",
        "logger=csv", *tiny(synthetic_data), "trainer.max_epochs=3", cwd=tmp_path,
    )  # fmt: skip
    record = records(tmp_path / "logs" / "train" / "multiruns" / "prune")["1"]
    assert record["status"] == "pruned" and record["optuna"]["pruned_epoch"] == 0
    assert record["timing"]["train_steps"] == 4 and record["tested"] is None  # 1 of 3 epochs
    trial = optuna.load_study(study_name="prune", storage=open_storage(str(storage))).trials[1]
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert trial.intermediate_values == {0: record["metrics"]["val/acc"]}
    assert trial.user_attrs["output_dir"] == record["output_dir"]
    assert trial.user_attrs[OUTCOME] == "pruned"  # kept, should the search die before telling
    assert "pruned after epoch 0" in proc.stdout + proc.stderr


def test_a_pruned_job_counts_as_finished_when_a_sweep_resumes(tmp_path, compose_cfg):
    cfg = compose_cfg("train", ["resume_sweep=true"])
    record = {"status": "pruned", "optimized_metric": "val/acc", "metrics": {}, "optuna": {}}
    config = OmegaConf.to_container(cfg, resolve=True)
    write_json_atomic(tmp_path / "results.json", {**record, "config": config})
    assert finished_record(cfg)["status"] == "pruned"
    with pytest.raises(optuna.TrialPruned):
        optimized_value(finished_record(cfg))


@pytest.mark.parametrize(
    "override, message",
    [
        ("optimizer.lrr=interval(0.01, 0.1)", "'optimizer.lrr' is not a key of the config"),
        ("model=convnet,convnett", "model=convnett is not an option"),
        ("hydra.sweeper.params=null", "the Optuna search has nothing to search"),
    ],
    ids=["key", "option", "empty"],
)
def test_a_misspelled_parameter_or_an_empty_space_is_one_clear_error(override, message, tmp_path):
    """Refused before the study is created or any job runs, as one paragraph."""
    args = ["fmlab-train", "-m", "hparams_search=convnet_optuna", override, "logger=none"]
    proc = run_cli(*args, cwd=tmp_path, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "Traceback" not in output, output
    assert message in output and not (tmp_path / "logs").exists()


def test_a_misspelled_optimized_metric_is_one_clear_error(synthetic_data, tmp_path):
    proc = run_cli(
        "fmlab-train",
        "-m",
        "hparams_search=convnet_optuna",
        "hydra.sweeper.n_trials=2",
        "optimized_metric=val/accuracy",
        "logger=none",
        *tiny(synthetic_data),
        cwd=tmp_path,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "Traceback" not in output
    assert "optimized_metric='val/accuracy'" in output and "'val/acc'" in output


def compose_hydra(overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    GlobalHydra.instance().clear()
    return cfg


def job_config(overrides: list[str], mode: RunMode, output_dir: Path):
    """A job's config as fmlab-train's main sees it, with Hydra's runtime set."""
    cfg = compose_hydra(overrides)
    with open_dict(cfg):
        cfg.hydra.mode, cfg.hydra.runtime.output_dir = mode, str(output_dir)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg.hydra
    return cfg


def test_resume_needs_a_named_sweep(tmp_path):
    cfg = job_config(["resume_sweep=true"], RunMode.MULTIRUN, tmp_path)
    with pytest.raises(FmlabError, match="sweep_id=NAME"):
        prepare_job(cfg)
    prepare_job(job_config(["resume_sweep=true", "sweep_id=a"], RunMode.MULTIRUN, tmp_path))
    with pytest.raises(FmlabError, match="multirun"):
        prepare_job(job_config(["resume_sweep=true", "sweep_id=a"], RunMode.RUN, tmp_path))


def test_ranks_from_srun_without_a_shared_folder_are_refused(tmp_path, monkeypatch):
    """Two srun tasks would each resolve ${now} to a folder of their own."""
    for name, value in {"SLURM_NTASKS": "2", "SLURM_JOB_NAME": "train"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(FmlabError, match="hydra.run.dir="):
        prepare_job(job_config([], RunMode.RUN, tmp_path))
    prepare_job(job_config([f"hydra.run.dir={tmp_path}"], RunMode.RUN, tmp_path))


def test_a_job_whose_ranks_differ_from_its_slurm_tasks_is_refused(tmp_path, monkeypatch):
    """The launcher sized the array from the command line's trainer, the job swept another."""
    env = {"SLURM_NTASKS": "1", "SLURM_NTASKS_PER_NODE": "1", "SLURM_JOB_NAME": "train"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    cfg = job_config(["trainer=ddp_cpu", f"hydra.sweep.dir={tmp_path}"], RunMode.MULTIRUN, tmp_path)
    with pytest.raises(FmlabError, match="1 tasks per node, but its trainer.devices=2"):
        prepare_job(cfg)


@pytest.mark.parametrize("launcher", ["parallel", "local"])
def test_ddp_in_a_worker_process_launcher_is_refused(launcher, tmp_path):
    overrides = [f"hydra/launcher={launcher}", "trainer=ddp_cpu", f"hydra.sweep.dir={tmp_path}"]
    with pytest.raises(FmlabError, match="trainer.devices=2"):
        prepare_job(job_config(overrides, RunMode.MULTIRUN, tmp_path))


def test_slurm_launcher_asks_for_what_the_trainer_uses():
    cfg = compose_hydra(["hydra/launcher=slurm", "trainer=ddp_slurm", "trainer.num_nodes=2"])
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["_target_"].endswith("SlurmLauncher")
    assert (launcher["nodes"], launcher["tasks_per_node"], launcher["gpus_per_node"]) == (2, 4, 4)
    assert launcher["max_num_timeout"] > 0  # pre-empted or timed-out jobs are requeued
    cfg = compose_hydra(["hydra/launcher=slurm", "trainer=ddp_cpu"])
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert (launcher["nodes"], launcher["tasks_per_node"], launcher["gpus_per_node"]) == (1, 2, 0)
    with pytest.raises(FmlabError, match="trainer.devices='auto'"):
        tasks_per_node("auto")


def test_named_sweeps_and_searches_compose():
    for group in ("sweep", "hparams_search"):
        for option in sorted(p.stem for p in Path(CONF_DIR, group).glob("*.yaml")):
            cfg = compose_hydra([f"{group}={option}"])
            assert cfg.hydra.sweeper.params, f"{group}={option} sweeps nothing"
    cfg = compose_hydra(["hydra/launcher=parallel"])
    assert OmegaConf.to_container(cfg.hydra.launcher, resolve=True)["n_jobs"] >= 1

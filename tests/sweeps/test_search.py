"""fmlab's Optuna sweeper (hydra_plugins/fmlab_optuna_sweeper) through Hydra's real multirun, with
a stand-in objective instead of training (fast); the training jobs, pruning included, run through
the real fmlab-train in test_sweeps.py."""

import math
import os
import sys
from importlib import metadata
from pathlib import Path

import hydra
import optuna
import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from fmlab import CONF_DIR
from fmlab.errors import FmlabError, NonFiniteLoss
from fmlab.sweeps.search import TrialFailed, failing_trial
from hydra_plugins.fmlab_optuna_sweeper import trials
from hydra_plugins.fmlab_optuna_sweeper._space import parse
from hydra_plugins.fmlab_optuna_sweeper.config import OPTIONS
from hydra_plugins.fmlab_optuna_sweeper.optuna_sweeper import OptunaSweeper


def objective(cfg) -> float:
    """Best at lr = 0.03; the trial's number reaches the job as the sweeper's env says."""
    assert os.environ[trials.TRIAL] == str(cfg_num())
    return -abs(math.log10(cfg.optimizer.lr) + 1.5)


def cfg_num() -> int:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().job.num


def search(tmp_path: Path, monkeypatch, *overrides: str, task=objective) -> list[dict]:
    """Run `-m` with ``overrides`` in-process; return the configs the task ran, in order."""
    ran = []

    def job(cfg):
        ran.append({"lr": cfg.optimizer.lr, "num": cfg_num()})
        return task(cfg)

    app = hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")(job)
    args = ["fmlab-train", "-m", "hparams_search=convnet_optuna", "logger=none", *overrides]
    monkeypatch.setattr(sys, "argv", args)
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")  # errors are raised to the test, not printed
    monkeypatch.chdir(tmp_path)
    try:
        app()
    finally:
        GlobalHydra.instance().clear()
    return ran


def study_in(sweep: Path, name: str = "train_convnet") -> optuna.Study:
    return optuna.load_study(
        study_name=name, storage=trials.open_storage(str(sweep / "optuna.journal"))
    )


def summary(sweep: Path) -> dict:
    return yaml.safe_load((sweep / "optimization_results.yaml").read_text())


def test_installed_optuna_is_today_s():
    """The sweeper's own dependencies: Optuna >= 4 and SQLAlchemy 2, not the old plugin."""
    assert int(metadata.version("optuna").split(".")[0]) >= 4
    assert metadata.version("sqlalchemy").split(".")[0] == "2"
    with pytest.raises(metadata.PackageNotFoundError):
        metadata.version("hydra-optuna-sweeper")
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", ["hparams_search=convnet_optuna"], return_hydra_config=True)
    GlobalHydra.instance().clear()
    assert cfg.hydra.sweeper._target_ == f"{OptunaSweeper.__module__}.OptunaSweeper"


def test_search_space_in_hydra_s_grammar():
    space = parse(
        [
            "optimizer.lr=tag(log, interval(0.001, 0.3))",
            "optimizer.momentum=interval(0.5, 0.99)",
            "trainer.max_epochs=int(interval(1, 4))",
            "data.batch_size=choice(32, 64)",
            "optimizer=adamw,sgd",
            "run_name='a b',c",
            "model.width=range(8, 40, 8)",
            "seed=3",
            "model.width=range(16, 33, 16)",  # later wins: the command line over params
            "+tags='a b'",
        ]
    )
    assert space.distributions == {
        "optimizer.lr": FloatDistribution(0.001, 0.3, log=True),
        "optimizer.momentum": FloatDistribution(0.5, 0.99),
        "trainer.max_epochs": IntDistribution(1, 4),
        "data.batch_size": CategoricalDistribution([32, 64]),
        "optimizer": CategoricalDistribution(["adamw", "sgd"]),
        "run_name": CategoricalDistribution(["a b", "c"]),
        "model.width": IntDistribution(16, 32, step=16),  # stop excluded, as Hydra's range
    }
    assert list(space.fixed.values()) == ["seed=3", "+tags='a b'"]
    params = {"optimizer.lr": 0.01, "optimizer": "sgd", "data.batch_size": 64, "run_name": "a b"}
    assert space.overrides(params) == [
        "seed=3",
        "+tags='a b'",
        "optimizer.lr=0.01",
        "optimizer=sgd",
        "data.batch_size=64",
        "run_name='a b'",
    ]
    with pytest.raises(FmlabError, match="nothing to search"):
        parse(["seed=1", "optimizer.lr=0.1"])
    with pytest.raises(FmlabError, match="glob"):
        parse(["optimizer=glob(*)"])


def test_seeded_search_repeats_and_a_rerun_continues_the_study(tmp_path, monkeypatch):
    """The same seed proposes the same trials; the same command again with more n_trials runs
    only the new ones, in new folders (job number = trial number)."""
    first = search(tmp_path, monkeypatch, "sweep_id=a", "hydra.sweeper.n_trials=3")
    again = search(tmp_path, monkeypatch, "sweep_id=b", "hydra.sweeper.n_trials=3")
    assert [r["lr"] for r in first] == [r["lr"] for r in again] and len(first) == 3
    assert len({r["lr"] for r in first}) == 3
    sweep = tmp_path / "logs" / "train" / "multiruns" / "a"
    best = summary(sweep)
    assert best["best_value"] == max(t.value for t in study_in(sweep).trials)

    assert search(tmp_path, monkeypatch, "sweep_id=a", "hydra.sweeper.n_trials=3") == []
    more = search(tmp_path, monkeypatch, "sweep_id=a", "hydra.sweeper.n_trials=5")
    assert [r["num"] for r in more] == [3, 4]
    assert not {r["lr"] for r in more} & {r["lr"] for r in first}  # new ones, not the first again
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == [str(n) for n in range(5)]
    assert summary(sweep)["trials"] == {"complete": 5}


def test_trials_left_running_by_a_dead_search(tmp_path, monkeypatch):
    """A trial whose job had ended (its outcome kept in the trial) is told so, not run again; one
    whose job died with the search is marked failed and its parameters are asked again."""
    sweep = tmp_path / "logs" / "train" / "multiruns" / "s"
    search(tmp_path, monkeypatch, "sweep_id=s", "hydra.sweeper.n_trials=2")
    study = study_in(sweep)
    space = {"optimizer.lr": FloatDistribution(0.001, 0.3, log=True)}
    ended, pruned, dead = study.ask(space), study.ask(space), study.ask(space)  # never told
    ended.set_user_attr(trials.OUTCOME, [-0.25])
    pruned.set_user_attr(trials.OUTCOME, "pruned")
    ran = search(tmp_path, monkeypatch, "sweep_id=s", "hydra.sweeper.n_trials=5")
    held = study_in(sweep).trials
    assert [t.state.name for t in held] == ["COMPLETE"] * 3 + ["PRUNED", "FAIL", "COMPLETE"]
    assert held[2].value == -0.25
    assert [r["lr"] for r in ran] == [dead.params["optimizer.lr"]] and ran[0]["num"] == 5
    assert held[5].user_attrs["retry_of"] == 4


def test_multi_objective_search_returns_its_pareto_front(tmp_path, monkeypatch):
    def two(cfg):  # a trade-off: a larger lr is better for one, worse for the other
        return [math.log10(cfg.optimizer.lr), cfg.optimizer.lr**2]

    args = [
        "sweep_id=mo",
        "optimized_metric=[val/acc,val/loss]",
        "hydra.sweeper.direction=[maximize,minimize]",
        "hydra.sweeper.pruner=none",
        "hydra/sweeper/sampler=nsgaii",
        "hydra.sweeper.sampler.population_size=4",
        "hydra.sweeper.n_trials=5",
    ]
    search(tmp_path, monkeypatch, *args, task=two)
    result = summary(tmp_path / "logs" / "train" / "multiruns" / "mo")
    assert result["optimized_metric"] == ["val/acc", "val/loss"]
    assert len(result["solutions"]) == 5  # every trial is on this front
    assert all(len(s["values"]) == 2 for s in result["solutions"])


@pytest.mark.parametrize(
    "sampler, pruner",
    [
        ("hydra/sweeper/sampler=tpe", "hydra/sweeper/pruner=median"),
        ("hydra/sweeper/sampler=random", "hydra.sweeper.pruner=hyperband"),  # by name: defaults
        ("hydra/sweeper/sampler=cmaes", "hydra.sweeper.pruner=none"),
        ("hydra/sweeper/sampler=gp", "hydra/sweeper/pruner=hyperband"),
        ("hydra.sweeper.sampler=qmc", "hydra.sweeper.pruner=median"),
        ("hydra/sweeper/sampler=nsgaii", "hydra/sweeper/pruner=none"),
    ],
)
def test_every_sampler_and_pruner_searches(sampler, pruner, tmp_path, monkeypatch, capsys):
    """hparams_search=convnet_optuna with each sampler and pruner from the command line."""
    assert len(search(tmp_path, monkeypatch, sampler, pruner, "hydra.sweeper.n_trials=2")) == 2
    built = [OPTIONS[kind][arg.rpartition("=")[2]]._target_ for kind, arg in
             (("sampler", sampler), ("pruner", pruner))]  # fmt: skip
    names = ", ".join(target.rpartition(".")[2] for target in built)
    assert f"trials ended; {names}, 1 at a time" in capsys.readouterr().out


def test_an_unknown_sampler_name_is_refused(tmp_path, monkeypatch):
    with pytest.raises(FmlabError, match="the samplers are: tpe, random, cmaes, gp, qmc, nsgaii"):
        search(tmp_path, monkeypatch, "hydra.sweeper.sampler=bayes")


def test_failed_trials_within_max_failure_rate(tmp_path, monkeypatch):
    def flaky(cfg):
        if cfg_num() == 1:
            raise RuntimeError("this trial breaks")
        return float("nan") if cfg_num() == 2 else 0.5

    args = ["sweep_id=f", "hydra.sweeper.n_trials=4"]
    sweep = tmp_path / "logs" / "train" / "multiruns" / "f"
    with pytest.raises(FmlabError, match=f"1 trial.s. failed.*max_failure_rate=0.1.*{sweep}/1"):
        search(tmp_path, monkeypatch, *args, task=flaky)  # 0.1 x 4 trials: none may fail
    ran = search(tmp_path, monkeypatch, *args, "hydra.sweeper.max_failure_rate=0.5", task=flaky)
    assert [r["num"] for r in ran] == [2, 3]  # 2 (NaN) fails too, within 0.5 x 4
    assert summary(sweep)["trials"] == {"complete": 2, "fail": 2}


def test_directions_must_match_the_metrics(tmp_path, monkeypatch):
    with pytest.raises(FmlabError, match="one direction per metric"):
        search(tmp_path, monkeypatch, "optimized_metric=[val/acc,val/loss]")
    with pytest.raises(FmlabError, match="pruner=none"):
        args = [
            "optimized_metric=[val/acc,val/loss]",
            "hydra.sweeper.direction=[maximize,minimize]",
        ]
        search(tmp_path, monkeypatch, *args)


def test_a_diverged_run_fails_its_trial_not_the_search(monkeypatch):
    """In a trial, a NaN loss (fmlab.run.callbacks.StopOnNonFinite) becomes an ordinary exception,
    which the sweeper records as a failed trial; outside a search it stays the run's error."""
    with pytest.raises(NonFiniteLoss), failing_trial():
        raise NonFiniteLoss("the training loss became NaN")
    monkeypatch.setenv(trials.TRIAL, "3")
    with pytest.raises(TrialFailed, match="became NaN"), failing_trial():
        raise NonFiniteLoss("the training loss became NaN")

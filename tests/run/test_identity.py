"""Run identity (fmlab.run.identity): one rule for "is this run finished, and is it the same run?",
read by resume, resumable sweeps, Optuna trials and paper tables alike."""

import json

import pytest
import yaml

from fmlab.errors import FmlabError
from fmlab.run import identity
from fmlab.run.files import file_sha256
from fmlab.tables.launch import job_state

CONFIG = {
    "seed": 1,
    "model": {"_target_": "fmlab.nets.ConvNet"},
    "scheduler": {"_target_": "fmlab.techniques.schedules.warmup_cosine"},
    "trainer": {"max_epochs": 2},
    "paths": {"output_dir": "/here"},
    "logger": {"csv": {}},
}


def finished_run(folder, config=CONFIG, status="complete", overrides=(), transfer=None):
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(list(overrides)))
    record = {"status": status, "config": config, "metrics": {"val/acc": 0.5}}
    (folder / "results.json").write_text(json.dumps({**record, "transfer": transfer}))
    return folder


def test_a_finished_run_is_this_run_whatever_folder_or_logger_it_had(tmp_path):
    run = finished_run(tmp_path / "run")
    elsewhere = {**CONFIG, "paths": {"output_dir": "/there"}, "logger": None}
    assert identity.finished(run, elsewhere)["status"] == "complete"


def test_a_run_of_fmlab_01_names_old_modules_and_is_the_same_run(tmp_path):
    old = {**CONFIG, "scheduler": {"_target_": "fmlab.schedules.warmup_cosine"}}
    assert identity.finished(finished_run(tmp_path / "run", old), CONFIG) is not None


def test_another_config_is_not_finished_and_a_sweep_refuses_it(tmp_path):
    run = finished_run(tmp_path / "run", status="pruned")
    longer = {**CONFIG, "trainer": {"max_epochs": 3}}
    assert identity.finished(run, longer) is None  # a resumed run may continue to 3 epochs
    with pytest.raises(FmlabError, match=r"trainer.max_epochs: 2 -> 3.*new sweep_id"):
        identity.finished(run, longer, refuse_changed=True)
    assert identity.finished(run, CONFIG, refuse_changed=True)["status"] == "pruned"


def test_only_continuable_keys_may_change_when_a_run_continues():
    now = {**CONFIG, "trainer": {"max_epochs": 3}, "seed": 2}
    assert identity.changes(CONFIG, now, identity.CONTINUABLE) == ["seed: 1 -> 2"]


def test_a_table_job_is_stale_once_the_checkpoint_it_started_from_is_made_again(tmp_path):
    source = tmp_path / "pretrain" / "last.ckpt"
    source.parent.mkdir()
    source.write_bytes(b"the first pre-training")
    transfer = {"from": str(source), "sha256": file_sha256(source)}
    overrides = [f"init_from={source}", "seed=0", "logger=csv", "hydra.run.dir=x"]
    job = finished_run(tmp_path / "row" / "seed_0", overrides=overrides, transfer=transfer)
    asked = [f"init_from={source}", "seed=0"]  # where it is kept and how it is watched: no matter
    assert job_state(job, asked) == "complete"
    source.write_bytes(b"the pre-training, made again")
    assert job_state(job, asked) == "stale"
    assert job_state(job, [*asked, "model.depth=2"]) == "stale"

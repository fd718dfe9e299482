"""Real offline W&B runs through fmlab's loggers, from the shipped conf/logger/wandb.yaml."""

import logging
from pathlib import Path

import pytest
import wandb
from omegaconf import OmegaConf
from wandb.errors import term
from wandb_files import exit_codes, wandb_records

from fmlab import CONF_DIR
from fmlab.errors import FmlabError
from fmlab.run.tracking import closing_loggers, instantiate_loggers


@pytest.fixture
def wandb_logger(tmp_path, monkeypatch):
    """The shipped W&B logger config, its run-specific interpolations given plain values."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    # wandb prints each warning once per process: forget what earlier tests printed.
    monkeypatch.setattr(term, "_printed_messages", set())
    conf = OmegaConf.load(Path(CONF_DIR, "logger", "wandb.yaml"))
    run = {"name": "test", "save_dir": str(tmp_path), "group": None, "job_type": "test", "tags": []}
    (logger,) = instantiate_loggers(OmegaConf.create({"wandb": OmegaConf.merge(conf.wandb, run)}))
    return logger


def run_file(root: Path) -> Path:
    """The run's `.wandb` file, once complete: W&B's service process writes it after `finish`
    returns, and is done when `wandb.teardown` returns."""
    wandb.teardown()
    (path,) = root.glob("wandb/offline-run-*/run-*.wandb")
    return path


def test_a_run_prints_one_line_of_its_own_and_gets_its_config(
    wandb_logger, tmp_path, capfd, caplog
):
    """W&B's banner, warnings (the anonymous setting) and 25-line history are silenced, fmlab says
    where the run is in one line, and the run keeps the config it was started with."""
    with caplog.at_level(logging.INFO), closing_loggers([wandb_logger]):
        wandb_logger.log_hyperparams({"seed": 7})  # fmlab-train's first call: W&B starts here
        wandb_logger.log_metrics({"train/loss": 1.0}, step=0)
    err = capfd.readouterr().err
    assert "wandb:" not in err and "anonymous" not in err, err
    assert "W&B run written offline: upload it with `wandb sync " in caplog.text
    records = wandb_records(run_file(tmp_path))
    kinds = {"run": lambda r: r.run.config, "config": lambda r: r.config}  # at start, or after
    updates = [kinds[kind](r) for r in records if (kind := r.WhichOneof("record_type")) in kinds]
    config = {item.key: item.value_json for update in updates for item in update.update}
    assert config["seed"] == "7"
    assert exit_codes(run_file(tmp_path)) == [0]  # finished


def test_a_job_that_raises_ends_its_run_as_failed(wandb_logger, tmp_path):
    with pytest.raises(FmlabError), closing_loggers([wandb_logger]):
        wandb_logger.log_hyperparams({"seed": 1})  # fmlab-train starts the run this way
        raise FmlabError("CIFAR-10 is not in data/")  # as fit raises it when the data is missing
    assert exit_codes(run_file(tmp_path)) == [1]  # failed

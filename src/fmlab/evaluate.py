"""fmlab-eval ckpt_path=...: test a checkpoint with the data, net and task it was trained with."""

import logging
import time
from pathlib import Path

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from fmlab import CONF_DIR, checks
from fmlab.checkpoints import check_fits, load_checkpoint
from fmlab.record import environment, write_json_atomic
from fmlab.tracking import finish_loggers, instantiate_loggers
from fmlab.train import build

log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig) -> dict:
    started = time.perf_counter()
    output_dir = Path(cfg.paths.output_dir)
    ckpt_path = Path(cfg.ckpt_path).expanduser()
    checkpoint = load_checkpoint(ckpt_path)
    train_cfg = OmegaConf.create(checkpoint["hyper_parameters"]["config"])
    train_cfg.data.data_dir = cfg.paths.data_dir  # this machine's data, not the training machine's

    datamodule, task = build(train_cfg)
    check_fits(task, checkpoint)
    task.load_state_dict(checkpoint["state_dict"])
    # The data's own state (a text tokenizer): the data refuses to evaluate with a different one.
    datamodule.load_state_dict(checkpoint.get(type(datamodule).__qualname__, {}))
    loggers = instantiate_loggers(cfg.get("logger"))
    trainer = instantiate(cfg.trainer, logger=loggers or False)
    try:
        results = trainer.test(task, datamodule=datamodule)
    finally:
        finish_loggers(loggers)

    record = {
        "status": "complete",
        "task": cfg.task_name,
        "metrics": {k: float(v) for k, v in results[0].items()},
        "checkpoint": str(ckpt_path.resolve()),
        "data": datamodule.record,
        "timing": {"wall_s": time.perf_counter() - started},
        "environment": environment(),
        "output_dir": str(output_dir.resolve()),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "train_config": checkpoint["hyper_parameters"]["config"],
    }
    write_json_atomic(output_dir / "results.json", record)
    log.info("Results: %s", output_dir / "results.json")
    return record


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="eval")
def hydra_main(cfg: DictConfig) -> None:
    checks.job(evaluate, cfg)


def main() -> None:
    checks.cli(hydra_main, "fmlab-eval")


if __name__ == "__main__":
    main()

"""fmlab-eval ckpt_path=...: test a checkpoint with the data, net and task it was trained with."""

import logging
import time
from pathlib import Path

import hydra
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from fmlab import CONF_DIR
from fmlab.errors import FmlabError
from fmlab.record import environment, write_json_atomic
from fmlab.tracking import finish_loggers, instantiate_loggers
from fmlab.train import build

log = logging.getLogger(__name__)


def load_checkpoint(path: Path) -> dict:
    if not path.is_file():
        raise FmlabError(
            f"ckpt_path={str(path)!r} does not exist. Pass the path of a .ckpt file "
            "that fmlab-train wrote (<run folder>/checkpoints/last.ckpt)."
        )
    # weights_only=True: a checkpoint is data; one that carries code is refused, not run.
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if "config" not in checkpoint.get("hyper_parameters", {}):
        raise FmlabError(
            f"ckpt_path={str(path)!r} holds no fmlab run config; it was not written by fmlab-train."
        )
    return checkpoint


def evaluate(cfg: DictConfig) -> dict:
    started = time.perf_counter()
    output_dir = Path(cfg.paths.output_dir)
    ckpt_path = Path(cfg.ckpt_path).expanduser()
    checkpoint = load_checkpoint(ckpt_path)
    train_cfg = OmegaConf.create(checkpoint["hyper_parameters"]["config"])
    train_cfg.data.data_dir = cfg.paths.data_dir  # this machine's data, not the training machine's

    datamodule, task = build(train_cfg)
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
def main(cfg: DictConfig) -> None:
    try:
        evaluate(cfg)
    except FmlabError as err:
        log.error("%s", err)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()

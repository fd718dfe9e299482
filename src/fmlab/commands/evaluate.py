"""fmlab-eval ckpt_path=... [split=val|test] [data.KEY=...]: score a checkpoint with the net, task
and data it was trained with, on the split asked for, optionally on other data of the same kind."""

import logging
import time
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from fmlab.commands.train import build
from fmlab.config import checks
from fmlab.errors import FmlabError
from fmlab.run.checkpoints import check_fits, load_checkpoint
from fmlab.run.record import environment, write_json_atomic
from fmlab.run.tracking import closing_loggers, instantiate_loggers
from fmlab.techniques.rebuild import checkpoint_base

log = logging.getLogger(__name__)

# Data keys that decide what the net was trained on (its inputs, vocabulary or classes): other
# data is read with the checkpoint's tokenizer and classes, never with new ones.
FIXED_DATA_KEYS = ("_target_", "tokenizer", "bpe_vocab_size", "block_size", "max_length")


def eval_data_config(train_data: dict, overrides: dict) -> DictConfig:
    """The checkpoint's data config with the command line's ``data.KEY=...`` on top."""
    if fixed := sorted(k for k in overrides if k in FIXED_DATA_KEYS):
        raise FmlabError(
            f"data.{fixed[0]} cannot change at evaluation: the net was trained with "
            f"data.{fixed[0]}={train_data.get(fixed[0])!r}, and other data is read with the "
            "checkpoint's own tokenizer, vocabulary and classes. Drop that override (the files "
            "and splits, e.g. data.corpus=..., data.path=..., data.val_fraction=..., may change)."
        )
    data = OmegaConf.merge(train_data, overrides)
    checks.check_config({"data": OmegaConf.to_container(data)})  # misspelled keys, wrong types
    return data


def evaluate(cfg: DictConfig) -> dict:
    started = time.perf_counter()
    output_dir = Path(cfg.paths.output_dir)
    ckpt_path = Path(cfg.ckpt_path).expanduser()
    checkpoint = load_checkpoint(ckpt_path)
    train_cfg = OmegaConf.create(checkpoint["hyper_parameters"]["config"])
    overrides = OmegaConf.to_container(cfg.data)
    if "data_dir" in train_cfg.data:  # labelled text names its files instead
        train_cfg.data.data_dir = cfg.paths.data_dir  # this machine's data, not the training one's
    train_cfg.data = eval_data_config(train_cfg.data, overrides)
    if "max_eval_windows" in train_cfg.data and "max_eval_windows" not in overrides:
        train_cfg.data.max_eval_windows = None  # the whole split; a subset served validation

    datamodule = instantiate(train_cfg.data)
    # The data's own state (a text tokenizer, a classifier's classes) before it loads anything:
    # whatever text is configured is then encoded as the net was trained to read it.
    datamodule.load_state_dict(checkpoint.get(type(datamodule).__qualname__, {}))
    datamodule, task = build(train_cfg, datamodule, checkpoint_base(checkpoint))
    checkpoint["state_dict"] = task.full_state(checkpoint)  # LoRA: the base, rebuilt and checked
    check_fits(task, checkpoint)
    task.load_state_dict(checkpoint["state_dict"])
    split = cfg.split or ("test" if datamodule.has_test else "val")
    if split not in ("val", "test") or (split == "val" and not datamodule.has_val):
        raise FmlabError(
            f"split={split!r}: this data has {'val and ' if datamodule.has_val else ''}test"
            f"{'' if datamodule.has_test else ' (none here)'} splits. Use split=test or split=val, "
            "or give the data one (e.g. data.val_fraction=0.1)."
        )
    log.info("Evaluating %s on the %s split of %s", ckpt_path, split, datamodule.record.get("name"))

    loggers = instantiate_loggers(cfg.get("logger"))
    trainer = instantiate(cfg.trainer, logger=loggers or False)
    with closing_loggers(loggers):
        run = trainer.test if split == "test" else trainer.validate
        results = run(task, datamodule=datamodule)

    record = {
        "status": "complete",
        "task": cfg.task_name,
        "split": split,
        "metrics": {k: float(v) for k, v in results[0].items()},
        "checkpoint": str(ckpt_path.resolve()),
        "data": datamodule.record,
        "data_overrides": overrides,
        "timing": {"wall_s": time.perf_counter() - started},
        "environment": environment(),
        "output_dir": str(output_dir.resolve()),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "train_config": checkpoint["hyper_parameters"]["config"],
    }
    write_json_atomic(output_dir / "results.json", record)
    log.info("Results: %s", output_dir / "results.json")
    return record

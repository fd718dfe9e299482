"""Loggers from the config; Weights & Biases online only when it can be, and one W&B run per job,
ended as failed when the job raised."""

import logging
import netrc
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

from hydra.utils import instantiate
from lightning.pytorch import loggers as pl_loggers
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, open_dict

log = logging.getLogger(__name__)


class WandbLogger(pl_loggers.WandbLogger):
    """Lightning's WandbLogger (conf/logger/wandb.yaml), less the ``anonymous`` setting.

    Lightning 2.6 always hands wandb.init ``anonymous`` (None when unset); wandb 0.31 ignores it
    and prints "The anonymous setting has no effect and will be removed" on every run.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._wandb_init.pop("anonymous", None)


def _wandb_host() -> str:
    return urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or ""


def wandb_mode() -> str:
    """ "online" when an API key is found and the W&B host answers, else "offline".

    Deciding here, rather than letting wandb.init find out, is what keeps a run on a machine
    without credentials or network from prompting for a key or waiting on retries.
    """
    host = _wandb_host()
    has_key = bool(os.environ.get("WANDB_API_KEY"))
    if not has_key:
        try:
            has_key = netrc.netrc().authenticators(host) is not None
        except (OSError, netrc.NetrcParseError):
            has_key = False
    if not has_key:
        return "offline"
    try:
        socket.create_connection((host, 443), timeout=3).close()
    except OSError:
        return "offline"
    return "online"


def instantiate_loggers(cfg: DictConfig | None, wandb_id: str | None = None) -> list[Logger]:
    """The configured loggers; ``wandb_id`` (kept in the run folder) makes a resumed run log into
    the same W&B run. Offline, each attempt writes its own offline-run-*-<id> folder with that
    id, and `wandb sync` uploads them into one run in order."""
    loggers = []
    for name, conf in (cfg or {}).items():
        if conf is None:
            continue
        is_wandb = conf.get("_target_", "").endswith("WandbLogger")
        if is_wandb and wandb_id and conf.get("id") is None:
            with open_dict(conf):
                conf.id, conf.resume = wandb_id, "allow"
        if is_wandb and conf.get("mode") is None:
            # WANDB_MODE, when the user set it, wins; else decide. Passing `mode` to wandb.init
            # (not `offline=True`, which sets WANDB_MODE for the whole process) keeps one job's
            # choice from leaking into the next job of a sweep.
            with open_dict(conf):
                conf.mode = os.environ.get("WANDB_MODE") or wandb_mode()
        log.info("Logger %s: %s", name, conf._target_)
        loggers.append(instantiate(conf))
    return loggers


def finish_loggers(loggers: list[Logger], exit_code: int = 0) -> None:
    """End this job's W&B run, so the next job in the same process starts a new one. A non-zero
    ``exit_code`` marks it failed in W&B; 0 marks it finished."""
    for logger in loggers:
        if not isinstance(logger, pl_loggers.WandbLogger):
            continue
        if logger._experiment is not None:
            run = logger.experiment  # W&B's own lines are silenced (conf/logger/wandb.yaml)
            if run.settings.mode == "offline":
                folder = run.settings.sync_dir
                log.info("W&B run written offline: upload it with `wandb sync %s`", folder)
            elif run.settings.mode == "online":
                log.info("W&B run: %s", run.url)
            run.finish(exit_code=exit_code)


@contextmanager
def closing_loggers(loggers: list[Logger]) -> Iterator[None]:
    """``with closing_loggers(loggers):`` around a job's work ends its W&B run on the way out:
    as failed (exit code 1) when the work raised, e.g. on missing data before the first step,
    which W&B would otherwise show as finished; the exception goes on."""
    try:
        yield
    except BaseException:
        finish_loggers(loggers, exit_code=1)
        raise
    finish_loggers(loggers)

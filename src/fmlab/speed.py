"""Callbacks that change how fast a net trains, not what it learns: channels-last memory and
torch.compile. Both act on the task's ``net`` in place, so checkpoints keep their keys."""

import logging

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

log = logging.getLogger(__name__)


class ChannelsLast(Callback):
    """Store conv weights as NHWC: cuDNN then runs the convolutions (and their outputs) in
    channels-last, which tensor cores prefer under bf16/fp16."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        pl_module.to(memory_format=torch.channels_last)


class CompileNet(Callback):
    """``torch.compile`` the task's net (``nn.Module.compile``: in place, same state_dict keys).
    The first steps pay the compilation; ``mode`` as torch.compile's (None, "max-autotune", ...).
    """

    def __init__(self, enabled: bool = True, mode: str | None = None) -> None:
        self.enabled, self.mode = enabled, mode

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.enabled:
            log.info("Compiling %s (mode=%s)", type(pl_module.net).__name__, self.mode)
            pl_module.net.compile(mode=self.mode)

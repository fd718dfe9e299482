"""Image classification: any net that maps (B, C, H, W) images to (B, num_classes) logits."""

from collections.abc import Callable

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler]
SPLITS = ("train", "val", "test")


class ImageClassifier(L.LightningModule):
    """Cross-entropy training with optional label smoothing.

    Logs ``{split}/loss`` and ``{split}/acc`` once per epoch for every split, and the training loss
    ``train/loss_step`` every ``trainer.log_every_n_steps`` steps. ``optimizer`` and ``scheduler``
    are factories (Hydra ``_partial_: true``) that receive the parameters and the optimizer. Only
    primitives are saved as hyper-parameters, so every checkpoint loads under torch's default
    ``weights_only=True``.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        scheduler_interval: str = "epoch",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        self.net = net
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        for split in SPLITS:
            # validate_args=False: the checks cost more than the update itself at batch size 4.
            acc = MulticlassAccuracy(net.num_classes, average="micro", validate_args=False)
            setattr(self, f"{split}_acc", acc)
            setattr(self, f"{split}_loss", MeanMetric())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def step(self, batch, split: str) -> torch.Tensor:
        x, y = batch
        logits = self(x)  # (B, num_classes)
        loss = F.cross_entropy(logits, y, label_smoothing=self.hparams.label_smoothing)
        # Metrics accumulate here and are logged once per epoch: on Lightning 2.6 each self.log
        # call costs about 0.8 ms (it re-walks its result state), more than a whole step of a
        # small net at batch size 4.
        getattr(self, f"{split}_loss").update(loss.detach(), len(y))
        getattr(self, f"{split}_acc").update(logits.detach(), y)
        return loss

    def log_epoch(self, split: str) -> None:
        self.log(f"{split}/loss", getattr(self, f"{split}_loss"), prog_bar=split != "train")
        self.log(f"{split}/acc", getattr(self, f"{split}_acc"), prog_bar=True)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = self.step(batch, "train")
        # The same condition under which Lightning writes step metrics to the loggers.
        if (self.global_step + 1) % self.trainer.log_every_n_steps == 0:
            self.log("train/loss_step", loss.detach(), on_step=True, on_epoch=False, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        self.step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self.step(batch, "test")

    def on_train_epoch_end(self) -> None:
        self.log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        self.log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self.log_epoch("test")

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        interval = self.hparams.scheduler_interval
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": interval},
        }

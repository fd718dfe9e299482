"""Image classification: any net that maps (B, C, H, W) images to (B, num_classes) logits."""

import inspect
from functools import partial
from pathlib import Path
from typing import Annotated

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from fmlab.config.constraints import FRACTION, NON_NEGATIVE_FLOAT, POSITIVE
from fmlab.errors import FmlabError
from fmlab.tasks.base import OptimizerFactory, SchedulerFactory, Task
from fmlab.techniques import losses
from fmlab.techniques.frozen_features import backbone_sha256, cached_head_inputs
from fmlab.techniques.lora import lora_settings
from fmlab.techniques.transfer import head_name, in_head


class ImageClassifier(Task):
    """Cross-entropy (or focal) training with optional label smoothing, class weights, an L1
    penalty, weight decay with or without norms and biases, a frozen backbone and a head LR.

    Logs ``{split}/loss`` and ``{split}/acc`` once per epoch for every split,
    ``{val,test}/balanced_acc`` (the mean per-class accuracy) and, with ``class_metrics``,
    ``{val,test}/acc_class<i>``; the training loss ``train/loss_step`` every
    ``trainer.log_every_n_steps`` steps. ``optimizer`` and ``scheduler`` are factories (Hydra
    ``_partial_: true``). Class weights are computed from ``datamodule.class_counts`` when
    fitting or testing. Only primitives are saved as hyper-parameters, so every checkpoint loads
    under torch's default ``weights_only=True``.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        scheduler_interval: str | None = None,
        label_smoothing: Annotated[float, FRACTION] = 0.0,
        loss: str = "cross_entropy",
        focal_gamma: Annotated[float, NON_NEGATIVE_FLOAT] = 2.0,
        class_weights: str = "none",
        class_weights_beta: Annotated[float, FRACTION] = 0.9999,
        decay_norm_and_bias: bool = True,
        l1: Annotated[float, NON_NEGATIVE_FLOAT] = 0.0,
        freeze_backbone: bool = False,
        head_lr: Annotated[float, POSITIVE] | None = None,
        layer_lr_decay: Annotated[float, POSITIVE] = 1.0,
        class_metrics: bool = False,
        lora: dict | None = None,
        cache_features: bool = False,
        feature_cache_dir: str = "cache/features",
    ) -> None:
        super().__init__()
        lora = lora_settings({"lora": lora})  # plain values (the checkpoint keeps them) or None
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        _check_choices(loss, class_weights, label_smoothing, scheduler_interval)
        self.net = net
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        for split in ("val", "test"):
            setattr(self, f"{split}_loss", MeanMetric())
            setattr(self, f"{split}_acc", MulticlassAccuracy(net.num_classes, average="micro"))
            setattr(self, f"{split}_class_acc", MulticlassAccuracy(net.num_classes, average=None))
        # Training loss and accuracy are running sums: at batch size 4 on a CPU, torchmetrics'
        # update would cost 8% of a step.
        self.register_buffer("train_sums", torch.zeros(2), persistent=False)  # loss·n, correct
        self.train_seen = 0
        self.criterion = partial(F.cross_entropy, label_smoothing=label_smoothing)
        if layer_lr_decay != 1.0 and not hasattr(net, "layer_of"):
            raise FmlabError(
                f"task.layer_lr_decay={layer_lr_decay}: {type(net).__name__} does not number its "
                "layers (no layer_of method), so its learning rate cannot decay by depth. Use "
                "task.layer_lr_decay=1.0 with this net, or a Transformer encoder (model=bert_*)."
            )
        if cache_features and not freeze_backbone:
            raise FmlabError(
                "task.cache_features=true keeps the backbone's features from one pass, which "
                "only holds while the backbone does not train. Add task.freeze_backbone=true "
                "(a linear probe), or set task.cache_features=false."
            )
        self.head = head_name(net) if freeze_backbone or head_lr is not None else None
        self.encoded_head: str | None = None  # set when the data hands over cached features
        if freeze_backbone:
            for name, p in net.named_parameters():
                p.requires_grad_(in_head(name, self.head))
        self.l1_params: list[nn.Parameter] = []  # filled by configure_optimizers when l1 > 0
        # LoRA: adapters on the named layers; the head, this data's classes, trains beside them.
        self.run_record = self.adapt(net, lora, also_train=(head_name(net),) if lora else ())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of a batch: of images through the net, or of cached features (what the head
        receives) through the head alone."""
        return self.net.get_submodule(self.encoded_head)(x) if self.encoded_head else self.net(x)

    def setup(self, stage: str) -> None:
        dm = self.trainer.datamodule if self.trainer is not None else None
        if not self.hparams.cache_features or dm is None:
            return
        if not getattr(dm, "encoded", False):
            if not hasattr(dm, "encode"):
                raise FmlabError(
                    f"task.cache_features=true needs a data module that can hand over features "
                    f"instead of images; {type(dm).__name__} cannot. Set "
                    "task.cache_features=false."
                )
            backbone = backbone_sha256(self.net, self.head)
            folder = Path(self.hparams.feature_cache_dir).expanduser()
            device = self.trainer.strategy.root_device
            dm.encode(
                lambda images, split: cached_head_inputs(
                    self.net,
                    self.head,
                    backbone,
                    images,
                    dm.prepare,
                    dm.preparation,
                    folder,
                    device,
                    dm.eval_batch_size,
                )
            )
            self.run_record["features"] = {"backbone_sha256": backbone, "cache": str(folder)}
        self.encoded_head = self.head

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.criterion(logits, y)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self.classify(x)  # (B, num_classes)
        loss = self.loss(logits, y)
        with torch.no_grad():  # one in-place add a step: at batch size 4 every op shows
            self.train_sums.add_(torch.stack((loss * len(y), (logits.argmax(1) == y).sum())))
        self.train_seen += len(y)
        # Each self.log call costs about 0.8 ms on Lightning 2.6, more than a whole step of a small
        # net at batch 4: log only on the steps whose metrics Lightning writes out.
        if (self.global_step + 1) % self.trainer.log_every_n_steps == 0:
            self.log("train/loss_step", loss.detach(), prog_bar=True)
        if self.l1_params:  # the logged loss is the data loss; the penalty only steers training
            loss = (
                loss + self.hparams.l1 * torch.stack(torch._foreach_norm(self.l1_params, 1)).sum()
            )
        return loss

    def eval_step(self, batch, split: str) -> None:
        x, y = batch
        logits = self.classify(x)
        getattr(self, f"{split}_loss").update(self.loss(logits, y), len(y))
        getattr(self, f"{split}_acc").update(logits, y)
        getattr(self, f"{split}_class_acc").update(logits, y)

    def validation_step(self, batch, batch_idx: int) -> None:
        self.eval_step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self.eval_step(batch, "test")

    def on_fit_start(self) -> None:
        self._set_criterion()

    def on_test_start(self) -> None:
        self._set_criterion()

    def _set_criterion(self) -> None:
        """The loss, weighted by the training set's class counts when asked (on this device)."""
        hp = self.hparams
        weight = None
        if hp.class_weights != "none":
            counts = getattr(self.trainer.datamodule, "class_counts", None)
            if counts is None:
                raise FmlabError(
                    f"task.class_weights={hp.class_weights!r} needs the training set's class "
                    "counts, which this data module does not provide (no `class_counts`). Use "
                    "task.class_weights=none with it."
                )
            weight = losses.class_weights(counts, hp.class_weights, hp.class_weights_beta)
            weight = weight.to(self.device)
        if hp.loss == "focal":
            self.criterion = partial(losses.focal_loss, gamma=hp.focal_gamma, weight=weight)
        elif weight is not None:
            self.criterion = partial(
                losses.weighted_cross_entropy, weight=weight, label_smoothing=hp.label_smoothing
            )

    def on_train_epoch_start(self) -> None:
        self.train_sums.zero_()
        self.train_seen = 0
        if self.hparams.freeze_backbone:
            # Frozen means frozen: no batch-norm statistics drift, no dropout in the backbone.
            for name, module in self.net.named_modules():
                if name and not in_head(name, self.head) and not self.head.startswith(name + "."):
                    module.eval()

    def on_train_epoch_end(self) -> None:
        if self.train_seen:
            loss, acc = self.train_sums / self.train_seen
            self.log("train/loss", loss, sync_dist=True)
            self.log("train/acc", acc, sync_dist=True, prog_bar=True)

    def eval_epoch_end(self, split: str) -> None:
        self.log(f"{split}/loss", getattr(self, f"{split}_loss"), prog_bar=split == "val")
        self.log(f"{split}/acc", getattr(self, f"{split}_acc"), prog_bar=split == "val")
        per_class = getattr(self, f"{split}_class_acc")
        accs = per_class.compute()  # (num_classes,)
        per_class.reset()
        self.log(f"{split}/balanced_acc", accs.mean())
        if self.hparams.class_metrics:
            self.log_dict({f"{split}/acc_class{i}": a for i, a in enumerate(accs)})

    def on_validation_epoch_end(self) -> None:
        self.eval_epoch_end("val")

    def on_test_epoch_end(self) -> None:
        self.eval_epoch_end("test")

    def parameter_groups(self) -> list[dict]:
        """Trainable parameters grouped by learning rate (head vs backbone; with
        ``layer_lr_decay`` < 1, lr·decay^(depth - layer) for a layer below the top, as Clark et
        al. 2020 and Sun et al. 2019 fine-tune BERT) and weight decay (none on norms and biases,
        the 1-D tensors, unless ``decay_norm_and_bias``)."""
        hp, groups = self.hparams, {}
        by_depth = hp.layer_lr_decay != 1.0
        for name, p in self.net.named_parameters():
            if p.requires_grad:
                head = self.head is not None and hp.head_lr is not None and in_head(name, self.head)
                decay = hp.decay_norm_and_bias or p.ndim > 1
                layer = self.net.layer_of(name) if by_depth and not head else None
                groups.setdefault((head, decay, layer), []).append(p)
        if by_depth:
            base_lr = getattr(self.optimizer_factory, "keywords", {}).get("lr")
            if base_lr is None:
                raise FmlabError(
                    "task.layer_lr_decay needs the optimizer's lr in its config (optimizer.lr), "
                    "to scale it layer by layer."
                )
            top = max(layer for _, _, layer in groups if layer is not None)
        return [
            {"params": ps}
            | ({"lr": hp.head_lr} if head else {})
            | ({"lr": base_lr * hp.layer_lr_decay ** (top - layer)} if layer is not None else {})
            | ({} if decay else {"weight_decay": 0.0})
            for (head, decay, layer), ps in groups.items()
        ]

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        # The epoch's running sums, so that a run resumed mid-epoch reports the same train/loss.
        checkpoint["train_epoch_sums"] = {"sums": self.train_sums.cpu(), "seen": self.train_seen}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        if "train_epoch_sums" in checkpoint:
            self.train_sums.copy_(checkpoint["train_epoch_sums"]["sums"])
            self.train_seen = checkpoint["train_epoch_sums"]["seen"]

    def configure_optimizers(self):
        groups = self.parameter_groups()
        if self.hparams.l1:
            self.l1_params = [p for g in groups if "weight_decay" not in g for p in g["params"]]
        if self.scheduler_factory is None:
            return self.optimizer_and_schedule(groups, "epoch")
        interval = self.hparams.scheduler_interval or _natural_interval(self.scheduler_factory)
        return self.optimizer_and_schedule(groups, interval)


def _natural_interval(factory) -> str:
    """Schedules sized in optimizer steps (``total_steps``: OneCycleLR, warmup_cosine) step per
    optimizer step; all others per epoch."""
    return "step" if "total_steps" in inspect.signature(factory).parameters else "epoch"


def _check_choices(loss, weights, label_smoothing, interval) -> None:
    if loss not in ("cross_entropy", "focal"):
        raise FmlabError(f"task.loss={loss!r} is not a loss; use cross_entropy or focal.")
    if weights not in losses.CLASS_WEIGHTS:
        raise FmlabError(
            f"task.class_weights={weights!r}: use one of {list(losses.CLASS_WEIGHTS)}."
        )
    if loss == "focal" and label_smoothing:
        raise FmlabError("task.loss=focal takes no label smoothing; set task.label_smoothing=0.")
    if interval not in (None, "step", "epoch"):
        raise FmlabError(f"task.scheduler_interval={interval!r}: use step, epoch or null.")

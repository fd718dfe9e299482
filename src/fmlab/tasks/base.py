"""What every fmlab task shares: the factory types it is given, the cheap ``__setattr__``, the
optimizer/schedule wiring (parameter groups, a schedule's run length filled in), and LoRA's
adapter-only checkpoints."""

import inspect
import math
from collections.abc import Callable, Iterable

import lightning as L
import torch
from torch import nn

from fmlab.errors import FmlabError
from fmlab.techniques.lora import adapters_only, apply_lora, base_identity, lora_settings, with_base

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler]
# Constructor arguments that size a schedule to the run; left null in the config, filled here.
LENGTH_ARGS = ("total_steps", "T_max")


def matrix_decay_groups(params: Iterable[nn.Parameter]) -> list[dict]:
    """Two parameter groups of the trainable ``params``: the optimizer's weight decay on tensors
    of 2 or more dimensions (matrices, embeddings), none on biases and norms (nanoGPT)."""
    params = [p for p in params if p.requires_grad]
    return [
        {"params": [p for p in params if p.dim() >= 2]},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]


class Task(L.LightningModule):
    """A LightningModule that is cheap for Lightning to drive at small batch sizes. A subclass
    keeps its factories as ``optimizer_factory`` and ``scheduler_factory``."""

    optimizer_factory: OptimizerFactory
    scheduler_factory: SchedulerFactory | None
    adapters: dict | None = (
        None  # the LoRA record (fmlab.techniques.lora.apply_lora) if adapters train
    )

    def __setattr__(self, name: str, value) -> None:
        # Lightning records the name of the running hook on the module around 40 times a
        # training step. nn.Module.__setattr__ first checks the value against parameters,
        # buffers and submodules (Python-level isinstance checks), 0.1 ms a step in all: a string
        # is none of those, so store it directly, as nn.Module would in the end.
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def adapt(self, net: nn.Module, lora: dict | None, also_train: tuple[str, ...] = ()) -> dict:
        """LoRA adapters on ``net`` when ``lora`` (``task.lora``) names layers; the record for
        results.json (``{"lora": ...}``), or ``{}``."""
        lora = lora_settings({"lora": lora})
        if lora:
            self.adapters = apply_lora(net, **lora, also_train=also_train)
        return {"lora": self.adapters} if lora else {}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # With adapters, the frozen base is left out: it is rebuilt from the run's config, and
        # its hash says whether the rebuilt one is the same.
        if self.adapters:
            checkpoint["state_dict"] = adapters_only(checkpoint["state_dict"], self.net, "net.")
            checkpoint["lora_base"] = {
                "identity": base_identity(self.hparams.get("config", {})),
                "sha256": self.adapters["base_sha256"],
            }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # Before Lightning loads the state dict, strictly: with the base it is whole again.
        checkpoint["state_dict"] = self.full_state(checkpoint)

    def full_state(self, checkpoint: dict, key: str = "ckpt_path") -> dict:
        """The checkpoint's state dict; an adapter-only one completed with this task's own base,
        refused unless that base has the hash the checkpoint records."""
        saved = checkpoint.get("lora_base")
        if saved is None:
            return checkpoint["state_dict"]
        if not self.adapters:
            raise FmlabError(
                f"{key} holds LoRA adapters without their base weights, but this run has no "
                "adapters (task.lora.target_modules=null). Use the task.lora it was trained "
                "with (its hyper_parameters.config.task.lora)."
            )
        identity = base_identity(self.hparams.get("config", {}))
        return with_base(self.net, checkpoint["state_dict"], saved, identity, key, "net.")

    def optimizer_and_schedule(self, groups: list[dict], interval: str):
        """What ``configure_optimizers`` returns: the optimizer over ``groups`` and, if there is
        a scheduler, the schedule stepped every ``interval`` ("step" or "epoch"). A group may
        carry ``scale``: {option: factor}, multiplied into the optimizer's value of that option
        (lr, eps, weight_decay) for that group."""
        optimizer = self.optimizer_factory(groups)
        # A group's "scale" multiplies the optimizer's own values in it (μP's per-width rules:
        # fmlab.nets.GPT.mup_groups), before a schedule records the group's initial lr.
        for group in optimizer.param_groups:
            for key, factor in group.pop("scale", {}).items():
                if key in group:
                    group[key] *= factor
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer, **self._run_length(interval))
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": interval},
        }

    def _run_length(self, interval: str) -> dict:
        """``{total_steps or T_max: length of the run}`` in ``interval`` units, for a schedule whose
        config leaves its length out; ``{}`` otherwise."""
        params = inspect.signature(self.scheduler_factory).parameters
        keywords = getattr(self.scheduler_factory, "keywords", {})
        missing = [a for a in LENGTH_ARGS if a in params and keywords.get(a) is None]
        if not missing:
            return {}
        steps = self.trainer.estimated_stepping_batches
        if interval == "epoch":
            per_epoch = math.ceil(
                self.trainer.num_training_batches / self.trainer.accumulate_grad_batches
            )
            steps = math.ceil(steps / max(1, per_epoch))
        return {missing[0]: int(steps)}

"""Learning-rate schedules that torch does not ship as one class, as LambdaLR factors.

The functions are sized in the units the task steps them in (``task.scheduler_interval``):
optimizer steps or epochs. ``total_steps`` is left out of the config: the task fills it with the
run's length. ``WarmupCosine`` is nanoGPT's schedule, in optimizer steps.
"""

import math
from typing import Annotated

import torch
from torch.optim.lr_scheduler import LambdaLR

from fmlab.config.constraints import (
    AT_LEAST_ONE,
    NON_NEGATIVE,
    NON_NEGATIVE_FLOAT,
    POSITIVE,
    PROBABILITY,
)


def warmup_cosine(
    optimizer: torch.optim.Optimizer,
    total_steps: Annotated[int, AT_LEAST_ONE],
    warmup_steps: Annotated[int, NON_NEGATIVE] = 0,
    min_lr_ratio: Annotated[float, PROBABILITY] = 0.0,
) -> LambdaLR:
    """Linear warm-up from lr/warmup_steps to lr over ``warmup_steps``, then cosine decay to
    ``min_lr_ratio``·lr at ``total_steps`` (Goyal et al. 2017 warm-up; Loshchilov & Hutter 2017)."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)


def warmup_linear(
    optimizer: torch.optim.Optimizer,
    total_steps: Annotated[int, AT_LEAST_ONE],
    warmup_steps: Annotated[int, NON_NEGATIVE] = 0,
    warmup_fraction: Annotated[float, PROBABILITY] = 0.0,
) -> LambdaLR:
    """Linear warm-up, then linear decay to 0 at ``total_steps``: BERT's fine-tuning schedule
    (Devlin et al. 2019, warm-up over the first 10% of steps). The warm-up is the larger of
    ``warmup_steps`` and ``warmup_fraction``·total_steps, so one config fits runs of any length."""
    warmup = max(warmup_steps, int(warmup_fraction * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return LambdaLR(optimizer, factor)


def warmup_multistep(
    optimizer: torch.optim.Optimizer,
    milestones: Annotated[list[int], NON_NEGATIVE],
    gamma: Annotated[float, POSITIVE] = 0.1,
    warmup_steps: Annotated[int, NON_NEGATIVE] = 0,
) -> LambdaLR:
    """Linear warm-up over ``warmup_steps``, then lr·gamma^k after the k-th milestone: the schedule
    of the long-tailed CIFAR papers (Cui et al. 2019; Cao et al. 2019, LDAM-DRW code)."""
    milestones = sorted(milestones)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return gamma ** sum(step >= m for m in milestones)

    return LambdaLR(optimizer, factor)


class WarmupCosine:
    """nanoGPT's ``get_lr`` as a LambdaLR factor of ``lr``: linear warm-up over ``warmup_iters``
    steps, cosine decay to ``min_lr`` at ``lr_decay_iters``, then ``min_lr``. A class, not a
    closure, so LambdaLR saves its (numeric) state in checkpoints."""

    def __init__(
        self,
        lr: Annotated[float, POSITIVE],
        min_lr: Annotated[float, NON_NEGATIVE_FLOAT],
        warmup_iters: Annotated[int, NON_NEGATIVE],
        lr_decay_iters: Annotated[int, AT_LEAST_ONE],  # warmup_iters < lr_decay_iters: a relation
    ) -> None:
        self.lr, self.min_lr = lr, min_lr
        self.warmup_iters, self.lr_decay_iters = warmup_iters, lr_decay_iters

    def __call__(self, it: int) -> float:
        if it < self.warmup_iters:
            return (it + 1) / (self.warmup_iters + 1)
        if it > self.lr_decay_iters:
            return self.min_lr / self.lr
        ratio = (it - self.warmup_iters) / (self.lr_decay_iters - self.warmup_iters)
        coeff = 0.5 * (1.0 + math.cos(math.pi * ratio))
        return (self.min_lr + coeff * (self.lr - self.min_lr)) / self.lr

"""Learning-rate schedules that torch does not ship as one class, as LambdaLR factors.

Both are sized in the units the task steps them in (``task.scheduler_interval``): optimizer steps
or epochs. ``total_steps`` is left out of the config: the task fills it with the run's length.
"""

import math

import torch
from torch.optim.lr_scheduler import LambdaLR


def warmup_cosine(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_steps: int = 0,
    min_lr_ratio: float = 0.0,
) -> LambdaLR:
    """Linear warm-up from lr/warmup_steps to lr over ``warmup_steps``, then cosine decay to
    ``min_lr_ratio``·lr at ``total_steps`` (Goyal et al. 2017 warm-up; Loshchilov & Hutter 2017)."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)


def warmup_multistep(
    optimizer: torch.optim.Optimizer,
    milestones: list[int],
    gamma: float = 0.1,
    warmup_steps: int = 0,
) -> LambdaLR:
    """Linear warm-up over ``warmup_steps``, then lr·gamma^k after the k-th milestone: the schedule
    of the long-tailed CIFAR papers (Cui et al. 2019; Cao et al. 2019, LDAM-DRW code)."""
    milestones = sorted(milestones)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return gamma ** sum(step >= m for m in milestones)

    return LambdaLR(optimizer, factor)

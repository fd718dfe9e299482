"""Learning-rate schedules as picklable callables for ``torch.optim.lr_scheduler.LambdaLR``
(their ``__dict__`` holds only numbers, so checkpoints stay ``weights_only``-loadable)."""

import math


class WarmupCosine:
    """nanoGPT's ``get_lr`` as a factor of ``lr``: linear warm-up over ``warmup_iters`` steps,
    cosine decay to ``min_lr`` at ``lr_decay_iters``, then ``min_lr``."""

    def __init__(self, lr: float, min_lr: float, warmup_iters: int, lr_decay_iters: int) -> None:
        if not 0 <= warmup_iters < lr_decay_iters:
            raise ValueError("need 0 <= warmup_iters < lr_decay_iters")
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

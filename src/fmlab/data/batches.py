"""Batches drawn straight from in-memory tensors: one indexing op per batch, no per-item collate.

A DataLoader over these is built with ``batch_size=None`` and ``sampler=BatchIndices(...)``: the
sampler yields whole index tensors and the dataset answers each with one gather. At batch size 4
this is what keeps data loading off the critical path.
"""

import torch
from torch.utils.data import Dataset, Sampler


class TensorBatches(Dataset):
    """Tensors sharing their first dimension, indexed a whole batch at a time."""

    def __init__(self, *tensors: torch.Tensor) -> None:
        if len({len(t) for t in tensors}) != 1:
            raise ValueError("all tensors must have the same length")
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, index: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(t[index] for t in self.tensors)


class BatchIndices(Sampler[torch.Tensor]):
    """Index tensors of ``batch_size``; a fresh permutation per epoch when shuffling.

    The permutation depends only on ``seed`` and the epoch (Lightning calls ``set_epoch``), so a
    run's data order is fixed by its config and does not drift with the global RNG.
    """

    def __init__(
        self, n: int, batch_size: int, shuffle: bool, seed: int = 0, drop_last: bool = False
    ) -> None:
        self.n, self.batch_size, self.shuffle = n, batch_size, shuffle
        self.seed, self.drop_last, self.epoch = seed, drop_last, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        if self.drop_last:
            return self.n // self.batch_size
        return -(-self.n // self.batch_size)

    def __iter__(self):
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.n, generator=g)
        else:
            order = torch.arange(self.n)
        yield from order.split(self.batch_size)[: len(self)]


class ClassBalancedBatchIndices(BatchIndices):
    """Class-balanced re-sampling: each epoch draws ``len(labels)`` indices with replacement,
    every class equally likely and every image equally likely within its class. Deterministic per
    ``seed`` and epoch, like ``BatchIndices``."""

    def __init__(
        self, labels: torch.Tensor, batch_size: int, seed: int = 0, drop_last: bool = False
    ) -> None:
        super().__init__(len(labels), batch_size, shuffle=True, seed=seed, drop_last=drop_last)
        counts = torch.bincount(labels)
        self.weights = 1.0 / counts[labels].double()  # (N,): 1 / size of the image's class

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.multinomial(self.weights, self.n, replacement=True, generator=g)
        yield from order.split(self.batch_size)[: len(self)]

"""Batches drawn straight from in-memory tensors: one indexing op per batch, no per-item collate.

A DataLoader over these is built with ``batch_size=None`` and ``sampler=BatchIndices(...)``: the
sampler yields whole index tensors and the dataset answers each with one gather. At batch size 4
this is what keeps data loading off the critical path.
"""

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


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
    run's data order is fixed by its config and does not drift with the global RNG; ``resume_at``
    makes the next pass over ``epoch`` skip the batches an interrupted run had already trained on.
    """

    def __init__(
        self, n: int, batch_size: int, shuffle: bool, seed: int = 0, drop_last: bool = False
    ) -> None:
        self.n, self.batch_size, self.shuffle = n, batch_size, shuffle
        self.seed, self.drop_last, self.epoch = seed, drop_last, 0
        self._resume: tuple[int, int] | None = None  # (epoch, batches already served)
        self.skipped = 0  # batches the current pass skipped on a resume

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume_at(self, epoch: int, batches: int) -> None:
        self._resume = (epoch, batches)

    def _start(self) -> int:
        """Batches to skip in the pass now starting: those served before a resume, if the pass is
        over the same epoch (Lightning may instead move on to the next one)."""
        resume, self._resume = self._resume, None
        self.skipped = resume[1] if resume and resume[0] == self.epoch else 0
        return self.skipped

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
        yield from order.split(self.batch_size)[self._start() : len(self)]


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
        yield from order.split(self.batch_size)[self._start() : len(self)]


class BatchLoader(DataLoader):
    """A DataLoader over ``BatchIndices`` that knows its position within the epoch.

    Lightning stores ``state_dict()`` of every training loader that has one in each checkpoint and
    hands it back on resume, so a run killed mid-epoch continues with exactly the batches it had
    left. Batches are counted as the loader hands them out (after any worker prefetching).
    """

    _position = (0, 0)  # (epoch, batches served in it)

    def __iter__(self):
        # A generator: the body runs at the first batch, after Lightning's set_epoch.
        epoch, served = self.sampler.epoch, 0
        for batch in super().__iter__():
            if served == 0:  # the sampler has applied its resume point by now
                served = self.sampler.skipped
            served += 1
            self._position = (epoch, served)
            yield batch

    def state_dict(self) -> dict:
        epoch, served = self._position
        return {"epoch": epoch, "batches": served}

    def load_state_dict(self, state: dict) -> None:
        self.sampler.resume_at(state["epoch"], state["batches"])

"""The windows a language model trains and is scored on, cut from a split's tokens in one gather
per batch: ``RandomWindows`` draws endless training batches of random windows (resumable through
``WindowLoader``, which counts the batches trained on), ``Windows`` serves the non-overlapping
windows that validation and test score (see ``fmlab.data.text``).
"""

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from fmlab.data.store import Tokens


class RandomWindows(IterableDataset):
    """Endless batches of random windows (B, block_size + 1), one gather each.

    Each step draws the starts of all ranks' windows from one generator and a rank keeps its own
    rows: DDP ranks never train on the same draw, and one process draws exactly what it always did.
    ``skip`` steps are drawn without reading any tokens (a resumed run continues its sequence).
    """

    def __init__(
        self, tokens: Tokens, block_size: int, batch_size: int, seed: int, rank=0, world_size=1
    ) -> None:
        self.tokens, self.block_size, self.batch_size, self.seed = (
            tokens,
            block_size,
            batch_size,
            seed,
        )
        self.rank, self.world_size, self.skip = rank, world_size, 0
        self.offsets = torch.arange(block_size + 1)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed)
        high = len(self.tokens) - self.block_size  # a start s reads tokens s … s + block_size
        rows = slice(self.rank * self.batch_size, (self.rank + 1) * self.batch_size)
        shape = (self.batch_size * self.world_size, 1)
        skip, self.skip = self.skip, 0
        for _ in range(skip):
            torch.randint(high, shape, generator=g)
        while True:
            starts = torch.randint(high, shape, generator=g)[rows]
            yield torch.from_numpy(self.tokens[(starts + self.offsets).numpy()])


class WindowLoader(DataLoader):
    """The training loader: it knows how many of its batches were trained on, which Lightning
    saves in every checkpoint (``state_dict``) and hands back on resume, so a resumed run draws
    the windows it would have drawn next. Lightning fetches a batch ahead of the step that uses
    it, so the data module counts a batch when it reaches the device (``trained``), not when the
    loader hands it out."""

    served = 0

    def trained(self) -> None:
        self.served += 1

    def state_dict(self) -> dict:
        return {"batches": self.served}

    def load_state_dict(self, state: dict) -> None:
        self.served = self.dataset.skip = state["batches"]


class Windows(Dataset):
    """Non-overlapping windows of ``block_size + 1`` tokens that share their boundary token,
    ``starts[i]`` the first of window i; a whole batch of windows at a time."""

    def __init__(self, tokens: Tokens, starts: np.ndarray, block_size: int) -> None:
        self.tokens, self.starts = tokens, starts
        self.offsets = np.arange(block_size + 1)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: torch.Tensor) -> torch.Tensor:
        starts = self.starts[index.numpy()][:, None]
        return torch.from_numpy(self.tokens[starts + self.offsets])

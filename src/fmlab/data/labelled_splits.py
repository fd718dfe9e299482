"""Which labelled examples train, validate and test: one file's examples split at random into
train / val / test (``data.path`` with ``val_fraction`` and ``test_fraction``), and the
class-balanced subset of the training examples that ``train_subset`` keeps (the few-label regime),
both drawn by ``split_seed``.
"""

import torch

from fmlab.data.labelled_files import Example
from fmlab.errors import FmlabError


def random_split(
    examples: list[Example], val_fraction: float, test_fraction: float, split_seed: int
) -> dict[str, list[Example]]:
    """``examples`` in a random order by ``split_seed``: the first ``val_fraction`` of them
    validate, the next ``test_fraction`` test, the rest train."""
    g = torch.Generator().manual_seed(split_seed)
    order = torch.randperm(len(examples), generator=g).tolist()
    n_val = int(len(examples) * val_fraction)
    n_test = int(len(examples) * test_fraction)
    parts = {
        "val": order[:n_val],
        "test": order[n_val : n_val + n_test],
        "train": order[n_val + n_test :],
    }
    return {s: [examples[i] for i in idx] for s, idx in parts.items()}


def balanced_subset(
    examples: list[Example], classes: list[str], train_subset: int, split_seed: int
) -> list[Example]:
    """``train_subset`` examples, ``train_subset // classes`` of each class (the remainder one
    more each to the first classes), drawn at random by ``split_seed``, in file order."""
    index = {c: i for i, c in enumerate(classes)}
    labels = torch.tensor([index[label] for label, _ in examples])
    per_class, extra = divmod(train_subset, len(classes))
    g = torch.Generator().manual_seed(split_seed)
    keep = []
    for c, name in enumerate(classes):
        want, have = per_class + (c < extra), (labels == c).nonzero().flatten()
        if want > len(have):
            raise FmlabError(
                f"data.train_subset={train_subset} cannot be drawn class-balanced: class "
                f"{name!r} has {len(have)} training examples and needs {want}. Pick at most "
                f"{int(torch.bincount(labels).min()) * len(classes)}, or null for all."
            )
        keep.append(have[torch.randperm(len(have), generator=g)[:want]])
    return [examples[i] for i in torch.cat(keep).sort().values.tolist()]

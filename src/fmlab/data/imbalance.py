"""Long-tailed subsets of a balanced training set (Cui et al., CVPR 2019, §5.1).

Class i of C keeps n_i = int(n_max · ρ^(−i/(C−1))) images (truncated, as in the authors'
``get_img_num_per_cls``), so class 0 keeps n_max and class C−1 keeps n_max/ρ. On CIFAR-10 with
ρ = 100: 5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50 (12,406 images).
"""

import torch

from fmlab.errors import FmlabError


def long_tail_counts(n_max: int, ratio: float, num_classes: int) -> list[int]:
    """Images kept per class for imbalance ratio ``ratio`` = n_0 / n_{C-1}."""
    if ratio < 1:
        raise FmlabError(
            f"data.imbalance_ratio={ratio} must be at least 1 (the head-to-tail ratio of class "
            "counts, e.g. 10, 50, 100), or null for the balanced data set."
        )
    factor = 1.0 / ratio  # the authors' imb_factor
    return [int(n_max * factor ** (i / (num_classes - 1.0))) for i in range(num_classes)]


def long_tailed_split(
    labels: torch.Tensor, order: torch.Tensor, val_size: int, ratio: float, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, val) indices: a class-balanced validation split of ``val_size`` images first, then
    the long-tailed training set from the remaining images, in the order of the permutation
    ``order``. The validation split is balanced like the test set, so val/acc tracks test/acc; with
    val_size = 0 the counts are the paper's exactly (n_max = 5000 on CIFAR-10)."""
    if val_size % num_classes:
        raise FmlabError(
            f"data.val_size={val_size} must be a multiple of the {num_classes} classes with "
            "data.imbalance_ratio set: the validation split is class-balanced like the test set."
        )
    per_class = [order[labels[order] == c] for c in range(num_classes)]  # each in `order`'s order
    n_val = val_size // num_classes
    n_max = min(len(idx) for idx in per_class) - n_val
    if n_max < 1:
        raise FmlabError(f"data.val_size={val_size} leaves no training images in some class.")
    counts = long_tail_counts(n_max, ratio, num_classes)
    train = torch.cat([idx[n_val : n_val + n] for idx, n in zip(per_class, counts, strict=True)])
    val = torch.cat([idx[:n_val] for idx in per_class])
    return train, val

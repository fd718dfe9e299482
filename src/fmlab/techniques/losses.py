"""Losses and class weights for imbalanced classification, chosen by the task's config.

Class weights follow Cui et al., "Class-Balanced Loss Based on Effective Number of Samples"
(CVPR 2019): a class with n training images weighs 1/E(n), E(n) = (1 - β^n) / (1 - β), and the
weights are scaled to sum to the number of classes (their Eq. 4 and §4). β = 0 gives equal
weights, β → 1 inverse frequency.
"""

import torch
import torch.nn.functional as F

CLASS_WEIGHTS = ("none", "inverse", "effective")


def class_weights(counts, kind: str, beta: float = 0.9999) -> torch.Tensor | None:
    """Per-class loss weights from the training set's class counts, summing to the class count."""
    if kind == "none":
        return None
    # A class without training images never reaches the loss; counting it as 1 keeps the
    # weights finite.
    n = torch.as_tensor(counts, dtype=torch.float64).clamp(min=1)
    if kind == "inverse":
        weights = 1.0 / n
    elif kind == "effective":
        weights = (1.0 - beta) / (1.0 - beta**n)  # 1 / effective number of samples
    else:
        raise ValueError(f"class weights {kind!r}: expected one of {CLASS_WEIGHTS}")
    return (weights * len(n) / weights.sum()).float()


def weighted_cross_entropy(
    logits: torch.Tensor, y: torch.Tensor, weight: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Mean over the batch of w[y] · CE, as Cui et al.'s code reduces it (by the batch size, not by
    the sum of the weights as ``F.cross_entropy(weight=...)`` does)."""
    losses = F.cross_entropy(logits, y, reduction="none", label_smoothing=label_smoothing)
    return (weight[y] * losses).mean()


def focal_loss(
    logits: torch.Tensor, y: torch.Tensor, gamma: float, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Softmax focal loss (Lin et al. 2017): mean of w[y] · (1 - p_y)^γ · (-log p_y).

    γ = 0 is cross-entropy (weighted like ``weighted_cross_entropy`` when ``weight`` is given).
    """
    ce = F.cross_entropy(logits, y, reduction="none")  # (B,) = -log p_y
    losses = (1.0 - torch.exp(-ce)).pow(gamma) * ce if gamma else ce
    if weight is not None:
        losses = weight[y] * losses
    return losses.mean()

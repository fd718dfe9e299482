"""Long-tailed CIFAR-10, class-balanced re-sampling, class weights and the focal loss."""

import pytest
import torch
import torch.nn.functional as F

from fmlab.data import CIFAR10DataModule
from fmlab.data.batches import ClassBalancedBatchIndices
from fmlab.data.imbalance import long_tail_counts
from fmlab.errors import FmlabError
from fmlab.techniques.losses import class_weights, focal_loss, weighted_cross_entropy


def test_long_tail_counts_are_cui_et_al_s():
    # int(5000 · 0.01^(i/9)): the counts of CIFAR-10-LT with ρ = 100 in the papers that use it.
    counts = long_tail_counts(5000, 100, 10)
    assert counts == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50] and sum(counts) == 12406
    assert (
        long_tail_counts(5000, 10, 10)[-1] == 500 and long_tail_counts(5000, 1, 10) == [5000] * 10
    )
    with pytest.raises(FmlabError, match="at least 1"):
        long_tail_counts(5000, 0.5, 10)


@pytest.mark.parametrize("val_size", [0, 20])
def test_long_tailed_data_module(synthetic_data, val_size):
    dm = CIFAR10DataModule(str(synthetic_data), val_size=val_size, imbalance_ratio=10)
    dm.setup()
    # 20 images per class; a balanced validation split takes val_size/10 of each class first.
    assert dm.class_counts == long_tail_counts(20 - val_size // 10, 10, 10)
    assert torch.bincount(dm.test_set.tensors[1]).tolist() == [4] * 10  # the test set untouched
    assert dm.record["class_counts"] == dm.class_counts and dm.record["imbalance_ratio"] == 10
    if val_size:
        assert torch.bincount(dm.val_set.tensors[1]).tolist() == [2] * 10
        train_images = {tuple(x.flatten()[:64].tolist()) for x in dm.train_set.tensors[0]}
        assert not any(
            tuple(x.flatten()[:64].tolist()) in train_images for x in dm.val_set.tensors[0]
        )
    with pytest.raises(FmlabError, match="multiple of the 10 classes"):
        CIFAR10DataModule(str(synthetic_data), val_size=15, imbalance_ratio=10).setup()


def test_class_balanced_sampler_draws_classes_equally_and_deterministically():
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(long_tail_counts(5000, 100, 10))])
    sampler = ClassBalancedBatchIndices(labels, batch_size=128, seed=3)
    first = torch.cat(list(sampler))
    assert len(first) == len(labels) and len(sampler) == -(-len(labels) // 128)
    drawn = torch.bincount(labels[first], minlength=10).float() / len(first)
    assert torch.allclose(drawn, torch.full((10,), 0.1), atol=0.015)  # not 0.40 … 0.004
    assert torch.equal(first, torch.cat(list(ClassBalancedBatchIndices(labels, 128, seed=3))))
    sampler.set_epoch(1)
    assert not torch.equal(first, torch.cat(list(sampler)))


def test_class_balanced_sampling_reaches_the_train_loader(synthetic_data):
    dm = CIFAR10DataModule(
        str(synthetic_data), val_size=0, imbalance_ratio=10, sampling="class_balanced"
    )
    dm.setup()
    assert isinstance(dm.train_dataloader().sampler, ClassBalancedBatchIndices)
    with pytest.raises(FmlabError, match="sampling"):
        CIFAR10DataModule(str(synthetic_data), sampling="balanced")


def test_class_weights_formulas():
    counts = [1000, 100, 10]
    inverse = class_weights(counts, "inverse")
    assert torch.allclose(inverse, torch.tensor([0.001, 0.01, 0.1]) * 3 / 0.111)
    beta = 0.99
    effective = torch.tensor([(1 - beta) / (1 - beta**n) for n in counts])
    assert torch.allclose(class_weights(counts, "effective", beta), effective * 3 / effective.sum())
    assert torch.allclose(class_weights(counts, "effective", 0.0), torch.ones(3))  # β = 0: none
    near_one = class_weights(counts, "effective", 1 - 1e-9)  # β → 1: inverse frequency
    assert torch.allclose(near_one, inverse, rtol=1e-4)
    assert class_weights(counts, "none") is None
    assert torch.isfinite(class_weights([10, 0], "effective")).all()  # an empty tail class


def test_focal_loss_with_gamma_zero_is_cross_entropy():
    torch.manual_seed(0)
    logits, y = torch.randn(32, 10) * 3, torch.randint(0, 10, (32,))
    assert torch.allclose(focal_loss(logits, y, gamma=0.0), F.cross_entropy(logits, y))
    weight = torch.rand(10) + 0.5
    assert torch.allclose(
        focal_loss(logits, y, gamma=0.0, weight=weight), weighted_cross_entropy(logits, y, weight)
    )
    # γ > 0 down-weights confident examples: never more than cross-entropy, each term (1-p)^γ·CE.
    p = F.softmax(logits, 1).gather(1, y[:, None]).squeeze(1)
    expected = ((1 - p) ** 2 * -p.log()).mean()
    assert torch.allclose(focal_loss(logits, y, gamma=2.0), expected)
    assert focal_loss(logits, y, gamma=2.0) < F.cross_entropy(logits, y)

"""ImageClassifier under a real Lightning Trainer on the synthetic folder."""

from functools import partial

import pytest
import torch
import torch.nn.functional as F
from conftest import quiet_trainer

from fmlab.data import CIFAR10DataModule
from fmlab.nets import ConvNet
from fmlab.tasks import ImageClassifier


def direct_metrics(net, dm, x, y):
    """Loss and accuracy of ``net`` on uint8 images ``x``, computed without Lightning."""
    with torch.no_grad():
        logits = net(dm.on_after_batch_transfer((x, y), 0)[0])
    return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


@pytest.mark.parametrize("batch_size", [16, 7])  # 7: a smaller last batch must weigh less
def test_logged_epoch_metrics_are_the_exact_means(synthetic_data, batch_size, tmp_path):
    torch.manual_seed(0)
    dm = CIFAR10DataModule(
        str(synthetic_data),
        batch_size=batch_size,
        eval_batch_size=9,
        val_size=40,
        crop=False,
        flip=False,
    )
    # lr = 0: the weights stay fixed, so the epoch means can be recomputed directly.
    task = ImageClassifier(ConvNet(10), partial(torch.optim.SGD, lr=0.0))
    trainer = quiet_trainer(
        tmp_path, max_epochs=1, enable_checkpointing=False, num_sanity_val_steps=0
    )
    trainer.fit(task, datamodule=dm)
    metrics = trainer.callback_metrics
    train_loss, train_acc = direct_metrics(task.net, dm, *dm.train_set.tensors)
    val_loss, val_acc = direct_metrics(task.net, dm, *dm.val_set.tensors)
    assert metrics["train/loss"].item() == pytest.approx(train_loss, rel=1e-5)
    assert metrics["train/acc"].item() == pytest.approx(train_acc)
    assert metrics["val/loss"].item() == pytest.approx(val_loss, rel=1e-5)
    assert metrics["val/acc"].item() == pytest.approx(val_acc)
    test = trainer.test(task, datamodule=dm, verbose=False)[0]
    assert test["test/acc"] == pytest.approx(direct_metrics(task.net, dm, *dm.test_set.tensors)[1])


def test_training_learns_and_checkpoints_load_weights_only(synthetic_data, tmp_path):
    torch.manual_seed(0)
    dm = CIFAR10DataModule(str(synthetic_data), batch_size=20, val_size=0, crop=False, flip=False)
    task = ImageClassifier(ConvNet(10), partial(torch.optim.Adam, lr=3e-3), label_smoothing=0.1)
    trainer = quiet_trainer(tmp_path, max_epochs=30)
    trainer.fit(task, datamodule=dm)
    assert trainer.callback_metrics["train/acc"] > 0.5  # class colours are easy to learn
    ckpt = torch.load(trainer.checkpoint_callback.best_model_path, weights_only=True)
    hparams = ckpt["hyper_parameters"]
    assert hparams["label_smoothing"] == 0.1 and hparams["loss"] == "cross_entropy"
    assert all(isinstance(v, str | int | float | bool | None) for v in hparams.values())


def test_label_smoothing_changes_the_loss():
    logits, y = torch.tensor([[4.0, 0.0, 0.0]]), torch.tensor([0])
    plain = ImageClassifier(ConvNet(3), torch.optim.SGD).loss(logits, y)
    smoothed = ImageClassifier(ConvNet(3), torch.optim.SGD, label_smoothing=0.3).loss(logits, y)
    assert smoothed > plain

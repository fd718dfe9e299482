"""Transfer learning: init_from a fmlab checkpoint, a new head, a frozen backbone."""

import shutil
from functools import partial
from pathlib import Path

import pytest
import torch
from conftest import quiet_trainer
from torch import nn

from fmlab.commands.train import train
from fmlab.data import CIFAR10DataModule
from fmlab.errors import FmlabError
from fmlab.nets import ConvNet
from fmlab.tasks import ImageClassifier
from fmlab.techniques.transfer import head_name, init_from_checkpoint

SHRUNK = [
    "logger=csv",
    "data.batch_size=20",
    "data.val_size=0",
    "data.eval_batch_size=40",
    "trainer.max_epochs=1",
    "++trainer.limit_train_batches=2",
    "trainer.accelerator=cpu",
]


class BNNet(nn.Module):
    """A small net with batch norm: its running statistics must stay frozen too."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x):
        return self.fc(self.features(x))


@pytest.fixture(scope="module")
def source_ckpt(synthetic_data, tmp_path_factory) -> str:
    """A checkpoint of the ConvNet's ImageClassifier after a few steps, as Lightning saves it."""
    root = tmp_path_factory.mktemp("source")
    task = ImageClassifier(ConvNet(10), partial(torch.optim.SGD, lr=0.1))
    trainer = quiet_trainer(root, max_steps=2, enable_checkpointing=False)
    trainer.fit(task, datamodule=CIFAR10DataModule(str(synthetic_data), batch_size=20, val_size=0))
    trainer.save_checkpoint(root / "source.ckpt")
    return str(root / "source.ckpt")


def test_init_from_loads_every_matching_tensor_and_records_it(
    compose_cfg, synthetic_data, tmp_path
):
    source = train(compose_cfg("train", [f"paths.data_dir={synthetic_data}", *SHRUNK]))
    init_from = tmp_path / "source.ckpt"
    Path(source["checkpoints"]["last"]).rename(init_from)
    # The second run shares the folder: without the first one's checkpoints it is a new run, not
    # a continuation (resume=auto would refuse to continue it with another config).
    shutil.rmtree(tmp_path / "checkpoints")
    overrides = [f"init_from={init_from}", "task.freeze_backbone=true", "task.head_lr=0.01"]
    cfg = compose_cfg("train", [f"paths.data_dir={synthetic_data}", *SHRUNK, *overrides])
    report = train(cfg)["transfer"]
    assert report["loaded"] == report["of"] == 10 and not report["shape_differs"]
    assert not report["not_in_checkpoint"] and not report["unused_from_checkpoint"]
    assert report["from"] == str(init_from.resolve())


def test_a_different_head_is_reported_and_kept_fresh(source_ckpt):
    torch.manual_seed(0)
    net = ConvNet(5)
    fresh_head = net.fc3.weight.detach().clone()
    report = init_from_checkpoint(net, source_ckpt)
    assert report["loaded"] == 8 and report["of"] == 10
    assert report["shape_differs"] == {
        "fc3.weight": {"checkpoint": [10, 84], "net": [5, 84]},
        "fc3.bias": {"checkpoint": [10], "net": [5]},
    }
    state = torch.load(source_ckpt, weights_only=True)["state_dict"]
    assert torch.equal(net.conv1.weight, state["net.conv1.weight"])
    assert torch.equal(net.fc3.weight, fresh_head)


def test_a_checkpoint_of_another_net_is_refused(source_ckpt, tmp_path):
    with pytest.raises(FmlabError, match="shares no tensor"):
        init_from_checkpoint(BNNet(10), source_ckpt)
    with pytest.raises(FmlabError, match="does not exist"):
        init_from_checkpoint(BNNet(10), str(tmp_path / "missing.ckpt"))


def test_frozen_backbone_stays_unchanged_and_the_head_learns(synthetic_data, tmp_path):
    torch.manual_seed(0)
    net = BNNet(10)
    assert head_name(net) == "fc" and head_name(ConvNet(10)) == "fc3"
    task = ImageClassifier(net, partial(torch.optim.SGD, lr=0.5), freeze_backbone=True)
    backbone = {k: v.clone() for k, v in net.features.state_dict().items()}  # weights, BN stats
    head = net.fc.weight.detach().clone()
    dm = CIFAR10DataModule(str(synthetic_data), batch_size=20, val_size=0)
    trainer = quiet_trainer(tmp_path, max_steps=3, enable_checkpointing=False)
    trainer.fit(task, datamodule=dm)
    for k, v in net.features.state_dict().items():
        assert torch.equal(v, backbone[k]), k
    assert not torch.equal(net.fc.weight, head)
    optimizer_params = [p for g in trainer.optimizers[0].param_groups for p in g["params"]]
    assert {id(p) for p in optimizer_params} == {id(net.fc.weight), id(net.fc.bias)}

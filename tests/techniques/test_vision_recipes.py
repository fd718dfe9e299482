"""The vision recipes: their optimizer and schedule build and step, and they say what the papers
say; the speed callbacks of cifar10_fast act on the net in place."""

import pytest
import torch
from hydra.utils import instantiate

from fmlab.commands.train import build
from fmlab.techniques.speed import ChannelsLast, CompileNet

RECIPES = ["resnet20_cifar10", "resnet110_cifar10", "resnet18_cifar10", "vit_cifar10"]
RECIPES += ["cifar10_fast"]


@pytest.mark.parametrize("experiment", RECIPES)
def test_recipe_optimizer_and_schedule_step(experiment, compose_cfg, synthetic_data):
    cfg = compose_cfg(
        "train", [f"experiment={experiment}", f"paths.data_dir={synthetic_data}", "model=convnet"]
    )
    _, task = build(cfg)  # convnet: the optimizer and schedule are what is checked here
    conf = task.configure_optimizers()
    optimizer, scheduler = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    for _ in range(3):
        optimizer.step()
        scheduler.step()
    assert torch.isfinite(torch.tensor(scheduler.get_last_lr())).all()


def test_resnet_recipes_are_he_et_al(compose_cfg):
    cfg = compose_cfg("train", ["experiment=resnet32_cifar10"])
    assert cfg.model._target_ == "fmlab.nets.ResNetCifar" and cfg.model.depth == 32
    assert (cfg.optimizer.lr, cfg.optimizer.momentum, cfg.optimizer.weight_decay) == (
        0.1,
        0.9,
        1e-4,
    )
    assert (cfg.data.batch_size, cfg.data.val_size) == (128, 5000)
    assert list(cfg.scheduler.milestones) == [32000, 48000] and cfg.scheduler.gamma == 0.1
    assert cfg.task.scheduler_interval == "step" and cfg.trainer.max_steps == 64000


def test_one_cycle_schedules_end_where_the_recipe_says(compose_cfg, synthetic_data):
    cfg = compose_cfg(
        "train", ["experiment=vit_cifar10", f"paths.data_dir={synthetic_data}", "model=convnet"]
    )
    cfg.trainer.max_steps = 200
    _, task = build(cfg)
    conf = task.configure_optimizers()
    lrs = []
    for _ in range(200):
        conf["optimizer"].step()
        conf["lr_scheduler"]["scheduler"].step()
        lrs.append(conf["lr_scheduler"]["scheduler"].get_last_lr()[0])
    assert max(lrs) == pytest.approx(1e-3, rel=0.01)  # reached after 5 of 200 steps of warm-up
    assert lrs.index(max(lrs)) < 5 and lrs[-1] == pytest.approx(1e-5, rel=0.01)


def test_speed_callbacks_keep_the_checkpoint_keys(compose_cfg, synthetic_data):
    cfg = compose_cfg(
        "train", ["experiment=cifar10_fast", f"paths.data_dir={synthetic_data}", "model=resnet9"]
    )
    _, task = build(cfg)
    keys = list(task.state_dict())
    ChannelsLast().setup(None, task, "fit")
    CompileNet(enabled=True).setup(None, task, "fit")
    assert list(task.state_dict()) == keys  # compiled in place: no "_orig_mod." prefix
    conv = task.net.features[0][0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    assert [type(instantiate(c)).__name__ for c in cfg.callbacks.values() if c][-2:] == [
        "ChannelsLast",
        "CompileNet",
    ]

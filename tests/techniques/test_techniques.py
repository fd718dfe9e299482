"""Every technique option composes with the ConvNet and trains a few real steps; the schedules,
augmentation, parameter groups, precision and EMA do what their configs say."""

import json
from functools import partial
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from fmlab import CONF_DIR
from fmlab.commands.evaluate import evaluate
from fmlab.commands.train import build, train
from fmlab.data import CIFAR10DataModule
from fmlab.data.augment import cutout
from fmlab.nets import ConvNet
from fmlab.tasks import ImageClassifier
from fmlab.techniques.schedules import warmup_cosine, warmup_linear, warmup_multistep

SHRUNK = [
    "logger=none",
    "callbacks=none",
    "data.batch_size=20",
    "data.val_size=40",
    "data.eval_batch_size=40",
    "trainer.max_epochs=1",
    "++trainer.limit_train_batches=3",
    "trainer.accelerator=cpu",
    "+trainer.enable_checkpointing=false",
    "+trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]


KEPT_FOR_TRAIN = ("data.batch_size", "data.val_size", "data.eval_batch_size", "trainer.accelerator")
# Every default callback, so that the shrunk trainer (no checkpointing) runs the EMA one alone.
DEFAULT_CALLBACKS = tuple(OmegaConf.load(Path(CONF_DIR) / "callbacks" / "default.yaml"))


def options(group: str) -> list[str]:
    return sorted(p.stem for p in Path(CONF_DIR, group).glob("*.yaml"))


def fit(compose_cfg, data_dir, overrides):
    """Compose as fmlab-train does, build, and fit a few steps with a real Trainer."""
    cfg = compose_cfg("train", [f"paths.data_dir={data_dir}", *SHRUNK, *overrides])
    datamodule, task = build(cfg)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=False)
    before = [p.detach().clone() for p in task.net.parameters()]
    trainer.fit(task, datamodule=datamodule)
    return task, trainer, before


TECHNIQUES = (
    [[f"optimizer={o}"] for o in options("optimizer")]
    + [[f"scheduler={s}"] for s in options("scheduler")]
    + [[f"augment={a}"] for a in options("augment")]
    # The long-tailed recipes name resnet32 (conf/model/resnet32.yaml): trained here as the ConvNet.
    + [[f"experiment={e}", "model=convnet"] for e in options("experiment") if "_lt_" in e]
    + [
        ["optimizer.nesterov=true"],
        ["scheduler=multistep", "scheduler.milestones=[1]", "task.scheduler_interval=step"],
        ["optimizer.weight_decay=0.1", "task.decay_norm_and_bias=false", "task.l1=1e-4"],
        ["trainer.precision=bf16-mixed"],
        ["trainer.gradient_clip_val=0.5"],
        ["trainer.gradient_clip_val=0.5", "trainer.gradient_clip_algorithm=value"],
        ["data=cifar10_lt", "data.val_size=0"],
        ["task.label_smoothing=0.1", "task.class_weights=effective"],
        ["task.freeze_backbone=true", "task.head_lr=0.01"],
        ["callbacks=ema", *[f"~callbacks.{c}" for c in DEFAULT_CALLBACKS]],
    ]
)


@pytest.mark.parametrize("overrides", TECHNIQUES, ids=lambda o: ",".join(o))
def test_each_technique_trains_a_step(overrides, compose_cfg, synthetic_data):
    task, trainer, before = fit(compose_cfg, synthetic_data, overrides)
    assert trainer.global_step == min(3, trainer.num_training_batches)  # long-tailed: fewer
    metrics = trainer.callback_metrics
    assert torch.isfinite(metrics["train/loss"])
    assert trainer.datamodule.val_size == 0 or 0 <= metrics["val/balanced_acc"] <= 1
    changed = [not torch.equal(b, p) for b, p in zip(before, task.net.parameters(), strict=True)]
    assert any(changed)


def test_schedules_sized_in_steps_fill_their_length_from_the_trainer(compose_cfg, synthetic_data):
    _, trainer, _ = fit(
        compose_cfg, synthetic_data, ["scheduler=onecycle", "++trainer.limit_train_batches=7"]
    )
    config = trainer.lr_scheduler_configs[0]
    assert config.interval == "step" and config.scheduler.total_steps == 7
    _, trainer, _ = fit(compose_cfg, synthetic_data, ["scheduler=cosine", "trainer.max_epochs=2"])
    config = trainer.lr_scheduler_configs[0]
    assert config.interval == "epoch" and config.scheduler.T_max == 2


def test_multistep_per_step_divides_the_lr_at_its_milestones(compose_cfg, synthetic_data):
    overrides = [
        "scheduler=multistep",
        "scheduler.milestones=[1,2]",
        "task.scheduler_interval=step",
    ]
    _, trainer, _ = fit(compose_cfg, synthetic_data, ["optimizer.lr=0.1", *overrides])
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.001)


def test_warmup_schedules_rise_linearly_then_decay():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    cosine = warmup_cosine(opt, total_steps=10, warmup_steps=4, min_lr_ratio=0.1)
    factors = [cosine.lr_lambdas[0](t) for t in range(11)]
    assert factors[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert factors[7] == pytest.approx(0.1 + 0.9 * 0.5) and factors[10] == pytest.approx(0.1)
    multistep = warmup_multistep(opt, milestones=[6, 8], gamma=0.01, warmup_steps=5)
    factors = [multistep.lr_lambdas[0](t) for t in range(10)]
    assert factors == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0, 1.0, 0.01, 0.01, 1e-4, 1e-4])
    linear = warmup_linear(opt, total_steps=20, warmup_steps=1, warmup_fraction=0.1)  # 2 steps
    factors = [linear.lr_lambdas[0](t) for t in range(21)]
    assert factors[:3] == pytest.approx([0.5, 1.0, 18 / 18]) and factors[11] == pytest.approx(0.5)
    assert factors[20] == 0.0


def test_16_mixed_on_cpu_falls_back_to_bf16(compose_cfg, synthetic_data):
    # Lightning 2.6 warns and trains in bf16: fp16 autocast is not supported on the CPU.
    _, trainer, _ = fit(compose_cfg, synthetic_data, ["trainer.precision=16-mixed"])
    assert trainer.precision == "bf16-mixed" and trainer.global_step == 3


def test_param_groups_split_head_lr_and_weight_decay():
    net = ConvNet(10)
    sgd = partial(torch.optim.SGD, lr=0.1, weight_decay=0.5)
    task = ImageClassifier(net, sgd, head_lr=0.01, decay_norm_and_bias=False)
    groups = task.configure_optimizers().param_groups
    by_id = {id(p): g for g in groups for p in g["params"]}
    assert sum(len(g["params"]) for g in groups) == len(list(net.parameters()))
    assert by_id[id(net.fc3.weight)]["lr"] == 0.01 and by_id[id(net.fc3.weight)]["weight_decay"]
    assert by_id[id(net.fc3.bias)]["lr"] == 0.01 and by_id[id(net.fc3.bias)]["weight_decay"] == 0
    assert by_id[id(net.conv1.weight)]["lr"] == 0.1 and by_id[id(net.conv1.weight)]["weight_decay"]
    assert by_id[id(net.conv1.bias)]["weight_decay"] == 0.0
    plain = ImageClassifier(ConvNet(10), sgd).configure_optimizers().param_groups
    assert len(plain) == 1 and plain[0]["weight_decay"] == 0.5


def test_cutout_zeroes_a_square_and_leaves_labels(synthetic_data, tmp_path):
    torch.manual_seed(0)
    x = torch.randn(64, 3, 32, 32)
    y = cutout(x, 8)
    zeroed = (y == 0).all(1)  # (B, H, W)
    assert zeroed.any() and (zeroed.flatten(1).sum(1) <= 64).all()
    assert torch.equal(y[~zeroed.unsqueeze(1).expand_as(y)], x[~zeroed.unsqueeze(1).expand_as(x)])
    dm = CIFAR10DataModule(str(synthetic_data), val_size=0, crop=False, flip=False, cutout=16)
    dm.setup()
    dm.trainer = L.Trainer(logger=False, default_root_dir=tmp_path)
    dm.trainer.training = True
    images, labels = dm.train_set.tensors
    out, out_labels = dm.on_after_batch_transfer((images, labels), 0)
    assert torch.equal(out_labels, labels)
    assert ((out == 0).all(1).flatten(1).sum(1) >= 64).all()  # at least a quarter square each
    dm.trainer.training = False  # evaluation: no cutout
    assert not (dm.on_after_batch_transfer((images, labels), 0)[0] == 0).all(1).any()


def test_ema_weights_are_validated_checkpointed_and_tested(compose_cfg, synthetic_data, tmp_path):
    cfg = compose_cfg(
        "train",
        [
            f"paths.data_dir={synthetic_data}",
            *[o for o in SHRUNK if o.split("=")[0] in KEPT_FOR_TRAIN],
            "logger=csv",  # LearningRateMonitor needs a logger
            "callbacks=ema",
            "callbacks.ema.decay=0.5",
            "~callbacks.progress_bar",
            "~callbacks.model_summary",
            "trainer.max_epochs=2",
        ],
    )
    record = train(cfg)
    ckpt = torch.load(record["tested"], map_location="cpu", weights_only=True)
    assert any(
        not torch.equal(v, ckpt["current_model_state"][k]) for k, v in ckpt["state_dict"].items()
    )
    dm = CIFAR10DataModule(str(synthetic_data), val_size=40)
    dm.setup()
    x, y = dm.test_set.tensors

    def test_loss(state):
        net = ConvNet(10)
        net.load_state_dict({k.removeprefix("net."): v for k, v in state.items()})
        with torch.no_grad():
            logits = net(dm.on_after_batch_transfer((x, y), 0)[0])
        return torch.nn.functional.cross_entropy(logits, y).item()

    averaged, raw = test_loss(ckpt["state_dict"]), test_loss(ckpt["current_model_state"])
    assert abs(averaged - raw) > 1e-4
    assert record["metrics"]["test/loss"] == pytest.approx(averaged, rel=1e-4)
    eval_cfg = compose_cfg("eval", [f"ckpt_path={record['tested']}", "logger=none"])
    eval_cfg.paths.data_dir = str(synthetic_data)
    evaluated = evaluate(eval_cfg)
    assert evaluated["metrics"]["test/loss"] == pytest.approx(averaged, rel=1e-4)
    assert json.loads((tmp_path / "results.json").read_text())["task"] == "eval"

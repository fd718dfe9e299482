"""DCGAN nets, the GAN task under a real Trainer, FID/KID features, the recipe through the CLI."""

import csv
import json
import struct
import warnings
from functools import partial

import lightning as L
import pytest
import torch
from conftest import quiet_trainer, run_cli
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import CSVLogger
from torchmetrics.image.fid import FrechetInceptionDistance

from fmlab.data import CIFAR10DataModule
from fmlab.errors import FmlabError
from fmlab.metrics.fid import build_features, load_classifier
from fmlab.nets import DCGAN, Discriminator, Generator
from fmlab.tasks import GAN

GRID_PX = 8 * 32 + 9 * 2  # 8×8 images of 32 pixels with make_grid's 2-pixel padding around each


@pytest.mark.parametrize(
    ("spectral_norm", "batch_norm"), [(False, True), (True, True), (False, False)]
)
def test_nets_have_the_dcgan_shapes(spectral_norm, batch_norm):
    g, d = Generator(latent_dim=16, width=8), Discriminator(8, 3, spectral_norm, batch_norm)
    images = g(torch.randn(5, 16))
    assert images.shape == (5, 3, 32, 32)
    assert images.abs().max() <= 1  # tanh
    logits = d(images)
    assert logits.shape == (5,) and torch.isfinite(logits).all()
    logits.sum().backward()
    assert all(p.grad is not None for p in d.parameters())
    has_bn = any(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules())
    assert has_bn == (batch_norm and not spectral_norm)


def test_dcgan_width_64_parameter_counts():
    net = DCGAN()  # 4w·4·4 projection of z=100, then 256→128→64→3 transposed convolutions
    g = sum(p.numel() for p in net.generator.parameters())
    d = sum(p.numel() for p in net.discriminator.parameters())
    assert g == 100 * 256 * 16 + 256 * 128 * 16 + 128 * 64 * 16 + 64 * 3 * 16 + 3 + 2 * 448
    assert d == 3 * 64 * 16 + 64 + 64 * 128 * 16 + 128 * 256 * 16 + 256 * 16 + 1 + 2 * 384


def gan(loss: str = "bce", d_steps: int = 1, **kwargs) -> GAN:
    torch.manual_seed(0)
    net = DCGAN(latent_dim=16, g_width=8, d_width=8, d_batch_norm=loss != "wgan-gp")
    adam = partial(torch.optim.Adam, lr=2e-4, betas=(0.5, 0.999))
    return GAN(net, adam, loss=loss, d_steps=d_steps, fid_features="none", **kwargs)


def images(data_root) -> CIFAR10DataModule:
    return CIFAR10DataModule(
        str(data_root), batch_size=16, val_size=0, crop=False, flip=False, mean=[0.5] * 3,
        std=[0.5] * 3,
    )  # fmt: skip


def fit(task: GAN, data_root, root, **trainer_kwargs) -> L.Trainer:
    trainer = quiet_trainer(root, enable_checkpointing=False, **trainer_kwargs)
    trainer.fit(task, datamodule=images(data_root))
    return trainer


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: p.detach().clone() for k, p in module.named_parameters()}


def changed(before: dict, module: torch.nn.Module) -> set[str]:
    return {k for k, p in module.named_parameters() if not torch.equal(before[k], p)}


@pytest.mark.parametrize("loss", ["bce", "hinge", "wgan-gp"])
def test_one_training_step_changes_both_nets(loss, synthetic_data, tmp_path):
    task = gan(loss)
    g, d = snapshot(task.net.generator), snapshot(task.net.discriminator)
    trainer = fit(task, synthetic_data, tmp_path, max_steps=1)
    assert trainer.global_step == 1  # one generator step; the discriminator's is not counted
    assert changed(g, task.net.generator) == set(g)  # every parameter moved
    # Every weight; the output bias only under bce: the hinge and Wasserstein losses are linear in
    # it with opposite signs on real and fake, so its gradient is exactly 0 while all logits ≈ 0.
    weights = {k for k in d if k.endswith("weight")}
    assert weights <= changed(d, task.net.discriminator)
    assert ("main.8.bias" in changed(d, task.net.discriminator)) == (loss == "bce")
    assert torch.isfinite(trainer.callback_metrics["train/d_loss"])
    assert torch.isfinite(trainer.callback_metrics["train/g_loss"])


def test_discriminator_step_alone_changes_only_the_discriminator(synthetic_data, tmp_path):
    # d_steps=2 and one batch: the discriminator steps, the generator's turn never comes.
    task = gan(d_steps=2)
    g, d = snapshot(task.net.generator), snapshot(task.net.discriminator)
    trainer = fit(task, synthetic_data, tmp_path, max_epochs=1, limit_train_batches=1)
    assert trainer.global_step == 0 and "train/g_loss" not in trainer.callback_metrics
    assert changed(g, task.net.generator) == set()
    assert all(p.grad is None for p in task.net.generator.parameters())
    assert changed(d, task.net.discriminator) == set(d)


def test_d_steps_per_generator_step_are_not_counted(synthetic_data, tmp_path):
    task = gan(d_steps=2)
    trainer = fit(task, synthetic_data, tmp_path, max_steps=1)
    assert trainer.global_step == 1 and trainer.fit_loop.epoch_loop.batch_progress.total.ready == 2


def test_learning_rates_are_logged_under_the_nets_they_drive(synthetic_data, tmp_path):
    trainer = L.Trainer(
        default_root_dir=tmp_path,  # the task's sample grids go there
        logger=CSVLogger(tmp_path, name="csv", version=""),
        callbacks=[LearningRateMonitor(logging_interval="epoch")],  # as conf/callbacks/default
        max_steps=2,
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(gan(), datamodule=images(synthetic_data))
    with open(tmp_path / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    lrs = {k: float(v) for row in rows for k, v in row.items() if k.startswith("lr-") and v}
    assert lrs == {"lr-generator": 2e-4, "lr-discriminator": 2e-4}


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_a_sample_grid_is_written_without_deprecated_encoders(synthetic_data, tmp_path):
    task = gan()
    fit(task, synthetic_data, tmp_path, max_steps=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torchvision's own PNG encoder warns since 0.29
        path = task.save_grid()
    assert path == tmp_path / "samples" / "step0000001.png"
    assert png_size(path) == (GRID_PX, GRID_PX)


@pytest.fixture(scope="module")
def cli_run(synthetic_data, tmp_path_factory):
    """The recipe through fmlab-train, shrunk: 4 generator steps, and FID features `auto`, which
    trains the fid_convnet classifier (2 epochs of the 200 synthetic images) into the run root."""
    root = tmp_path_factory.mktemp("gan")
    run_dir = root / "run"
    proc = run_cli(
        "fmlab-train",
        "experiment=dcgan_cifar10",
        f"paths.data_dir={synthetic_data}",
        f"hydra.run.dir={run_dir}",
        "trainer.max_steps=4",
        "data.batch_size=20",
        "model.g_width=8",
        "model.d_width=8",
        "task.sample_every_n_steps=2",
        "task.fid_images=30",
        "task.kid_subset_size=10",
        cwd=root,
    )
    return run_dir, json.loads((run_dir / "results.json").read_text()), proc


def test_recipe_run_records_fid_and_writes_grids(cli_run):
    run_dir, record, proc = cli_run
    metrics = record["metrics"]
    assert {"test/fid_convnet", "test/kid_convnet", "train/g_loss"} <= set(metrics)
    assert metrics["test/fid_convnet"] > 0 and metrics["test/fid_images"] == 30
    assert record["optimized_metric"] == "test/fid_convnet" and record["timing"]["train_steps"] == 4
    features = record["fid_features"]
    assert features["kind"] == "classifier" and features["recipe"] == "fid_convnet"
    assert features["model"] == "fmlab.nets.ConvNet" and len(features["sha256"]) == 64
    assert [p.rsplit("/", 1)[-1] for p in record["samples"]] == [
        f"step{s:07d}.png" for s in (0, 2, 4)
    ]
    for path in record["samples"]:
        assert png_size(run_dir / "samples" / path.rsplit("/", 1)[-1]) == (GRID_PX, GRID_PX)
    ckpt = torch.load(record["checkpoints"]["last"], map_location="cpu", weights_only=True)
    assert ckpt["state_dict"]["fixed_noise"].shape == (64, 100)
    (wandb_file,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    assert b"samples" in wandb_file.read_bytes()  # the grid went to W&B as an image


def test_fid_of_real_images_against_themselves_is_near_zero(cli_run, synthetic_data):
    _, record, _ = cli_run
    extractor, info = load_classifier(record["fid_features"]["checkpoint"])
    assert info["num_features"] == 84  # ConvNet's penultimate layer
    dm = CIFAR10DataModule(str(synthetic_data), val_size=0)
    dm.setup()
    real = dm.train_set.tensors[0].float() / 255  # (200, 3, 32, 32) in [0, 1]

    def fid(a, b) -> float:
        metric = FrechetInceptionDistance(feature=extractor)
        metric.update(a, real=True)
        metric.update(b, real=False)
        return metric.compute().item()

    noise = torch.rand_like(real, generator=torch.Generator().manual_seed(0))
    itself, against_noise = fid(real, real), fid(real, noise)
    assert abs(itself) < 1e-3 * against_noise
    assert against_noise > 1.0


def test_inception_features_need_their_weights_file(tmp_path):
    with pytest.raises(FmlabError, match="inception_weights"):
        build_features("inception", None, None, str(tmp_path))
    with pytest.raises(FmlabError, match="does not exist"):
        build_features("inception", str(tmp_path / "missing.pth"), None, str(tmp_path))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not weights")
    with pytest.raises(FmlabError, match="Inception features could not be built"):
        build_features("inception", str(junk), None, str(tmp_path))


def test_images_outside_minus_one_one_are_refused(synthetic_data, tmp_path):
    dm = CIFAR10DataModule(str(synthetic_data), val_size=0)  # CIFAR-10 mean/std normalisation
    trainer = L.Trainer(
        logger=False, enable_progress_bar=False, max_steps=1, default_root_dir=tmp_path
    )
    with pytest.raises(FmlabError, match=r"data.mean=.*set both to \[0.5, 0.5, 0.5\]"):
        trainer.fit(gan(), datamodule=dm)


def test_recipe_is_the_reference_one(compose_cfg):
    cfg = compose_cfg("train", ["experiment=dcgan_cifar10"])
    assert cfg.task._target_ == "fmlab.tasks.GAN" and cfg.task.loss == "bce"
    assert cfg.optimizer.lr == 2e-4 and list(cfg.optimizer.betas) == [0.5, 0.999]
    assert cfg.data.batch_size == 128 and cfg.trainer.max_steps == 100_000
    assert cfg.model.latent_dim == 100 and cfg.task.d_steps == 1
    assert cfg.optimized_metric == "test/fid_convnet" and "gan" in cfg.tags

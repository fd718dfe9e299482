"""GAN training with manual optimisation: discriminator and generator steps alternate."""

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import torch
from lightning.pytorch.loggers import WandbLogger
from torch import nn
from torch.optim.lr_scheduler import ConstantLR
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance
from torchvision.utils import save_image

from fmlab.config.constraints import AT_LEAST_ONE, NON_NEGATIVE_FLOAT, Range
from fmlab.errors import FmlabError
from fmlab.metrics.fid import build_features
from fmlab.tasks.base import Task
from fmlab.techniques.gan_losses import LOSSES, discriminator_loss, generator_loss, gradient_penalty

OptimizerFactory = Callable[..., torch.optim.Optimizer]


def _uncounted(optimizer) -> None:
    """Keep this optimizer's steps out of ``trainer.global_step``, so that max_steps and every
    step count are generator steps, as in the GAN papers. Lightning's manual loop counts each
    LightningOptimizer.step through these two hooks, re-set before every training step."""
    optimizer._on_before_step = optimizer._on_after_step = lambda: None


class GAN(Task):
    """Trains ``net.generator`` against ``net.discriminator`` on the images of the data's batches.

    Every batch is one discriminator step; every ``d_steps``-th batch is also one generator step,
    and only generator steps count as training steps. Both nets get their own ``optimizer``
    (a Hydra ``_partial_``). Images are expected in [-1, 1] (data mean = std = 0.5).

    Every ``sample_every_n_steps`` steps and at the end, the generator renders a fixed noise
    batch into an 8×8 grid: ``<run>/samples/step<N>.png``, also logged to W&B as ``samples``.
    Testing computes FID and KID between the test images and as many generated ones (at most
    ``fid_images``), with the features named in the metric: ``test/fid_<features>``.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler=None,
        loss: str = "bce",
        d_steps: Annotated[int, AT_LEAST_ONE] = 1,
        gp_weight: Annotated[float, NON_NEGATIVE_FLOAT] = 10.0,
        sample_every_n_steps: Annotated[int, AT_LEAST_ONE] = 500,
        grid_size: Annotated[int, AT_LEAST_ONE] = 8,
        noise_seed: int = 0,
        fid_images: Annotated[int, AT_LEAST_ONE] = 10000,
        fid_features: str = "auto",
        inception_weights: str | None = None,
        fid_cache_dir: str = "cache/fid",
        kid_subset_size: Annotated[int, Range(ge=2)] = 1000,  # KID compares pairs
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        self.automatic_optimization = False
        self.net = net
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        noise = torch.randn(
            grid_size**2, net.latent_dim, generator=torch.Generator().manual_seed(noise_seed)
        )
        self.register_buffer("fixed_noise", noise)  # (grid², latent_dim), saved in checkpoints
        self.samples: list[str] = []
        self.metrics: tuple = ()  # (FID, KID), outside the module tree: never in a checkpoint
        self.features_name, self.features_record = None, None

    @property
    def run_record(self) -> dict:
        """What fmlab-train adds to results.json for this task."""
        return {"samples": self.samples, "fid_features": self.features_record}

    def setup(self, stage: str) -> None:
        # Checked here, not in __init__: Hydra's instantiate would wrap the FmlabError.
        if self.hparams.loss not in LOSSES:
            raise FmlabError(f"task.loss={self.hparams.loss!r} is not a GAN loss; one of {LOSSES}.")
        if self.scheduler_factory is not None:
            raise FmlabError("the GAN task keeps a constant learning rate; set scheduler=none.")
        dm = self.trainer.datamodule
        if dm is not None and (tuple(dm.mean), tuple(dm.std)) != ((0.5,) * 3, (0.5,) * 3):
            raise FmlabError(
                f"the GAN generates images in [-1, 1] but data.mean={list(dm.mean)} and "
                f"data.std={list(dm.std)} map the real ones elsewhere; set both to [0.5, 0.5, 0.5]."
            )
        h = self.hparams
        if self.features_record is None and h.fid_features != "none":  # a bad one fails fast
            extractor, self.features_name, self.features_record = build_features(
                h.fid_features, h.inception_weights, dm, h.fid_cache_dir
            )
            self.metrics = (
                FrechetInceptionDistance(feature=extractor),
                KernelInceptionDistance(feature=extractor, subset_size=h.kid_subset_size),
            )

    def noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.net.latent_dim, device=self.device)

    def discriminator_step(self, real: torch.Tensor) -> torch.Tensor:
        _, d_opt = self.optimizers()
        _uncounted(d_opt)
        with torch.no_grad():
            fake = self.net.generator(self.noise(len(real)))  # (B, C, H, W)
        with self.toggled_optimizer(d_opt):
            loss = discriminator_loss(
                self.hparams.loss, self.net.discriminator(real), self.net.discriminator(fake)
            )
            if self.hparams.loss == "wgan-gp":
                gp = gradient_penalty(self.net.discriminator, real, fake)
                loss = loss + self.hparams.gp_weight * gp
            d_opt.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            d_opt.step()
        return loss.detach()

    def generator_step(self, batch_size: int) -> torch.Tensor:
        g_opt, _ = self.optimizers()
        with self.toggled_optimizer(g_opt):
            fake = self.net.generator(self.noise(batch_size))
            loss = generator_loss(self.hparams.loss, self.net.discriminator(fake))
            g_opt.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            g_opt.step()
        return loss.detach()

    def training_step(self, batch, batch_idx: int) -> None:
        real = batch[0]  # (B, C, H, W) in [-1, 1]; labels unused
        self.log("train/d_loss", self.discriminator_step(real), prog_bar=True)
        if (batch_idx + 1) % self.hparams.d_steps == 0:
            self.log("train/g_loss", self.generator_step(len(real)), prog_bar=True)
            if self.global_step % self.hparams.sample_every_n_steps == 0:
                self.save_grid()

    def on_train_start(self) -> None:
        self.save_grid()  # the untrained generator: step 0

    def on_train_end(self) -> None:
        if not self.samples or not self.samples[-1].endswith(f"step{self.global_step:07d}.png"):
            self.save_grid()

    @torch.no_grad()
    def save_grid(self) -> Path:
        """The fixed noise through the generator in eval mode (running batch-norm statistics)."""
        was_training = self.net.generator.training
        self.net.generator.eval()
        images = self.net.generator(self.fixed_noise)  # (grid², C, 32, 32) in [-1, 1]
        self.net.generator.train(was_training)
        path = Path(self.trainer.default_root_dir) / "samples" / f"step{self.global_step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        # The grid as a PNG through Pillow: torchvision's own image encoders are deprecated.
        save_image(
            images,
            path,
            nrow=self.hparams.grid_size,
            padding=2,
            normalize=True,
            value_range=(-1, 1),
        )
        self.samples.append(str(path))
        for logger in self.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image("samples", [str(path)], step=self.global_step)
        return path

    def on_test_start(self) -> None:
        for metric in self.metrics:
            metric.reset()
            metric.to(self.device)
        self.fid_seen = 0

    def test_step(self, batch, batch_idx: int) -> None:
        real = batch[0][: self.hparams.fid_images - self.fid_seen]  # (b, C, H, W) in [-1, 1]
        if len(real) == 0 or not self.metrics:
            return
        self.fid_seen += len(real)
        fake = self.net.generator(self.noise(len(real)))
        for metric in self.metrics:
            metric.update((real + 1) / 2, real=True)
            metric.update((fake + 1) / 2, real=False)

    def on_test_epoch_end(self) -> None:
        if not self.metrics:
            return
        fid, kid = self.metrics
        kid.subset_size = min(kid.subset_size, self.fid_seen)  # a small test set still gets a KID
        kid_mean, kid_std = kid.compute()
        name = self.features_name
        self.log(f"test/fid_{name}", fid.compute().float())
        self.log(f"test/kid_{name}", kid_mean.float())
        self.log(f"test/kid_{name}_std", kid_std.float())
        self.log("test/fid_images", float(self.fid_seen))

    def configure_optimizers(self):
        g_opt = self.optimizer_factory(self.net.generator.parameters())
        d_opt = self.optimizer_factory(self.net.discriminator.parameters())
        # LearningRateMonitor names an optimizer after its class (lr-Adam, lr-Adam-1) unless its
        # scheduler has a `name`: each gets a scheduler that keeps the rate (factor 1) to be
        # logged as lr-generator and lr-discriminator. Manual optimisation steps no scheduler.
        return [
            {"optimizer": opt, "lr_scheduler": {"scheduler": ConstantLR(opt, 1.0), "name": name}}
            for name, opt in (("lr-generator", g_opt), ("lr-discriminator", d_opt))
        ]

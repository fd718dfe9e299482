"""GAN losses on discriminator logits: each returns (discriminator loss, generator loss) pieces.

- ``bce``: the non-saturating loss of Goodfellow et al. 2014 §3 (the generator maximises
  log D(G(z)) rather than minimising log(1 - D(G(z)))), as DCGAN trains.
- ``hinge``: Lim & Ye 2017 / Miyato et al. 2018 (SNGAN).
- ``wgan-gp``: Wasserstein critic with gradient penalty (Gulrajani et al. 2017, λ = 10).
"""

import torch
import torch.nn.functional as F
from torch import nn

LOSSES = ("bce", "hinge", "wgan-gp")


def discriminator_loss(name: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Loss of the discriminator, given its logits on real and on generated images."""
    if name == "bce":
        return F.binary_cross_entropy_with_logits(
            real, torch.ones_like(real)
        ) + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
    if name == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    if name == "wgan-gp":
        return fake.mean() - real.mean()
    raise ValueError(f"unknown GAN loss {name!r}; one of {LOSSES}")


def generator_loss(name: str, fake: torch.Tensor) -> torch.Tensor:
    """Loss of the generator, given the discriminator's logits on generated images."""
    if name == "bce":
        return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
    if name in ("hinge", "wgan-gp"):
        return -fake.mean()
    raise ValueError(f"unknown GAN loss {name!r}; one of {LOSSES}")


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """E[(‖∇D(x̂)‖₂ - 1)²] at x̂ uniformly between paired real and generated images
    (Gulrajani et al. 2017, Algorithm 1)."""
    eps = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)  # (B, C, H, W)
    (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()

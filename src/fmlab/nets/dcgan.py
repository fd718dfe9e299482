"""DCGAN for 32×32 images (Radford et al. 2016, "Unsupervised Representation Learning with Deep
Convolutional Generative Adversarial Networks"): a transposed-conv generator and a strided-conv
discriminator, both without pooling or hidden fully connected layers."""

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as sn


def _init(module: nn.Module) -> None:
    """Radford et al. §4: weights from N(0, 0.02); batch-norm scales from N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class Generator(nn.Module):
    """z (B, latent_dim) → images (B, channels, 32, 32) in [-1, 1]: a 4×4 projection, then three
    stride-2 transposed convolutions with batch norm and ReLU, tanh at the output."""

    def __init__(self, latent_dim: int = 100, width: int = 64, channels: int = 3) -> None:
        super().__init__()
        self.latent_dim = latent_dim

        def up(c_in: int, c_out: int) -> list[nn.Module]:
            return [
                nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]

        self.main = nn.Sequential(
            nn.ConvTranspose2d(latent_dim, 4 * width, 4, 1, 0, bias=False),  # (B, 4w, 4, 4)
            nn.BatchNorm2d(4 * width),
            nn.ReLU(inplace=True),
            *up(4 * width, 2 * width),  # (B, 2w, 8, 8)
            *up(2 * width, width),  # (B, w, 16, 16)
            nn.ConvTranspose2d(width, channels, 4, 2, 1),  # (B, channels, 32, 32)
            nn.Tanh(),
        )
        _init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z[:, :, None, None])  # (B, latent_dim, 1, 1) → (B, C, 32, 32)


class Discriminator(nn.Module):
    """images (B, channels, 32, 32) → one logit per image: three stride-2 convolutions with
    LeakyReLU(0.2), batch norm after all but the first (Radford et al. §3), then a 4×4 convolution.

    ``spectral_norm`` (Miyato et al. 2018) constrains every layer's Lipschitz constant instead of
    batch norm. ``batch_norm=False`` is for WGAN-GP, whose per-image gradient penalty is invalid
    under batch statistics (Gulrajani et al. 2017 §4).
    """

    def __init__(
        self,
        width: int = 64,
        channels: int = 3,
        spectral_norm: bool = False,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        wrap = sn if spectral_norm else (lambda m: m)
        norm = batch_norm and not spectral_norm

        def down(c_in: int, c_out: int) -> list[nn.Module]:
            layers = [wrap(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=not norm))]
            return layers + [nn.BatchNorm2d(c_out)] * norm + [nn.LeakyReLU(0.2, inplace=True)]

        self.main = nn.Sequential(
            wrap(nn.Conv2d(channels, width, 4, 2, 1)),  # (B, w, 16, 16)
            nn.LeakyReLU(0.2, inplace=True),
            *down(width, 2 * width),  # (B, 2w, 8, 8)
            *down(2 * width, 4 * width),  # (B, 4w, 4, 4)
            wrap(nn.Conv2d(4 * width, 1, 4, 1, 0)),  # (B, 1, 1, 1)
        )
        _init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).flatten()  # (B,)


class DCGAN(nn.Module):
    """The pair a GAN task trains: ``generator`` and ``discriminator`` (one config node, so the
    model group stays one YAML per choice)."""

    def __init__(
        self,
        latent_dim: int = 100,
        g_width: int = 64,
        d_width: int = 64,
        channels: int = 3,
        spectral_norm: bool = False,
        d_batch_norm: bool = True,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.generator = Generator(latent_dim, g_width, channels)
        self.discriminator = Discriminator(d_width, channels, spectral_norm, d_batch_norm)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z)

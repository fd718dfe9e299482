"""Batched image augmentation and normalisation, run on the device that trains.

Every function takes a whole batch (B, C, H, W) and draws its randomness from torch's global RNG
on that device, which ``seed_everything`` fixes.
"""

import torch
import torch.nn.functional as F


def random_crop(x: torch.Tensor, padding: int) -> torch.Tensor:
    """Zero-pad by ``padding`` on each side and crop back to (H, W) at a random offset per image."""
    b, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))  # (B, C, H+2p, W+2p)
    top = torch.randint(0, 2 * padding + 1, (b, 1), device=x.device)
    left = torch.randint(0, 2 * padding + 1, (b, 1), device=x.device)
    rows = (top + torch.arange(h, device=x.device))[:, None, :, None]  # (B, 1, H, 1)
    cols = (left + torch.arange(w, device=x.device))[:, None, None, :]  # (B, 1, 1, W)
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    chans = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chans, rows, cols]  # (B, C, H, W)


def random_flip(x: torch.Tensor) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = torch.rand(x.shape[0], 1, 1, 1, device=x.device) < 0.5
    return torch.where(flip, x.flip(3), x)


def normalize(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """uint8 pixels → (x / 255 - mean) / std per channel, as one fused x * scale + shift."""
    return torch.addcmul(shift, x, scale)


def normalizer(mean, std, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The (scale, shift) pair, each (1, C, 1, 1), that ``normalize`` takes for mean and std."""
    mean = torch.tensor(mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(std, device=device).view(1, -1, 1, 1)
    return 1.0 / (255.0 * std), -mean / std


def cutout(x: torch.Tensor, size: int) -> torch.Tensor:
    """Zero a ``size``×``size`` square at a random centre per image, clipped at the borders
    (DeVries & Taylor 2017). Applied to normalised images, zero is the channel mean, as in their
    code."""
    b, _, h, w = x.shape
    top = torch.randint(0, h, (b, 1, 1, 1), device=x.device) - size // 2
    left = torch.randint(0, w, (b, 1, 1, 1), device=x.device) - size // 2
    rows = torch.arange(h, device=x.device).view(1, 1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, 1, w)
    inside = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
    return x.masked_fill(inside, 0.0)  # inside: (B, 1, H, W), broadcast over channels


def resize(x: torch.Tensor, side: int) -> torch.Tensor:
    """Bilinear resize to ``side``×``side`` (e.g. 32 → 224 for an ImageNet-pretrained net), as
    float pixels: interpolation is not defined on uint8 on every device."""
    return F.interpolate(x.float(), size=(side, side), mode="bilinear", align_corners=False)

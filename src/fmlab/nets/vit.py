"""A small Vision Transformer for 32×32 images (Dosovitskiy et al. 2021, pre-norm encoder), with
4×4 patches: 64 tokens per CIFAR image."""

import torch
from torch import nn


class ViT(nn.Module):
    """Patch embedding → [class token] + learned positions → ``depth`` pre-norm encoder layers →
    LayerNorm → the class token (``pool="cls"``) or the mean of the tokens (``"mean"``) → fc."""

    def __init__(
        self,
        num_classes: int,
        image_size: int = 32,
        patch_size: int = 4,
        dim: int = 384,
        depth: int = 7,
        heads: int = 12,
        mlp_dim: int = 384,
        dropout: float = 0.0,
        pool: str = "cls",
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} is not a multiple of patch {patch_size}")
        if pool not in ("cls", "mean"):
            raise ValueError(f"pool must be 'cls' or 'mean', got {pool!r}")
        self.num_classes, self.pool = num_classes, pool
        n_patches = (image_size // patch_size) ** 2
        self.patch = nn.Conv2d(in_channels, dim, patch_size, patch_size)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim)) if pool == "cls" else None
        self.pos = nn.Parameter(torch.randn(1, n_patches + (pool == "cls"), dim) * 0.02)
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(
            dim, heads, mlp_dim, dropout, activation="gelu", batch_first=True, norm_first=True
        )
        # Nested tensors only help with padding masks, which images never have.
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch(x).flatten(2).transpose(1, 2)  # (B, N, dim)
        if self.cls is not None:
            x = torch.cat([self.cls.expand(len(x), -1, -1), x], 1)  # (B, 1 + N, dim)
        x = self.encoder(self.dropout(x + self.pos))  # (B, T, dim)
        x = self.norm(x)
        x = x[:, 0] if self.cls is not None else x.mean(1)  # (B, dim)
        return self.fc(x)  # (B, num_classes)

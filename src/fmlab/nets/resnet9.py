"""ResNet-9 of David Page's DAWNBench entry ("How to train your ResNet", Myrtle.ai 2018): the net
behind 94% CIFAR-10 in minutes on one GPU, and the ancestor of airbench."""

import torch
from torch import nn


def conv_bn(in_ch: int, out_ch: int, pool: bool = False) -> nn.Sequential:
    layers = [nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch)]
    layers.append(nn.ReLU(inplace=True))
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(channels, channels), conv_bn(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNet9(nn.Module):
    """prep conv 64 → conv 128 + pool + residual → conv 256 + pool → conv 512 + pool + residual →
    global max-pool → fc, its logits multiplied by ``scale`` (0.125 in Page's net). 6.6M
    parameters at ``width`` 64."""

    def __init__(self, num_classes: int, width: int = 64, scale: float = 0.125) -> None:
        super().__init__()
        self.num_classes, self.scale = num_classes, scale
        w = (width, 2 * width, 4 * width, 8 * width)
        self.features = nn.Sequential(
            conv_bn(3, w[0]),  # (B, 64, 32, 32)
            conv_bn(w[0], w[1], pool=True),  # (B, 128, 16, 16)
            Residual(w[1]),
            conv_bn(w[1], w[2], pool=True),  # (B, 256, 8, 8)
            conv_bn(w[2], w[3], pool=True),  # (B, 512, 4, 4)
            Residual(w[3]),
        )
        self.fc = nn.Linear(w[3], num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x).amax((2, 3))  # (B, 512)
        return self.fc(x) * self.scale  # (B, num_classes)

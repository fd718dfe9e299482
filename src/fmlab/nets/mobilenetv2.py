"""MobileNetV2 (Sandler et al. 2018, Table 2) with CIFAR strides: the stem and the second stage
keep stride 1, so a 32×32 image reaches the last stage at 4×4 (as in kuangliu/pytorch-cifar)."""

import torch
import torch.nn.functional as F
from torch import nn

# (expansion t, output channels c, blocks n, first stride s) per stage: Sandler et al. Table 2,
# with the ImageNet strides 2 of the stem and stage 2 set to 1 for 32×32 images.
STAGES = (
    (1, 16, 1, 1),
    (6, 24, 2, 1),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1) -> list:
    conv = nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False)
    return [conv, nn.BatchNorm2d(out_ch)]


class InvertedResidual(nn.Module):
    """1×1 expand → ReLU6 → 3×3 depthwise → ReLU6 → 1×1 linear projection; the residual is added
    only when the block keeps the shape (stride 1, same width), as in the paper."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_ch * expansion
        layers = [] if expansion == 1 else [*conv_bn(in_ch, hidden, 1), nn.ReLU6(inplace=True)]
        layers += [*conv_bn(hidden, hidden, 3, stride, groups=hidden), nn.ReLU6(inplace=True)]
        layers += conv_bn(hidden, out_ch, 1)
        self.layers = nn.Sequential(*layers)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(x)
        return x + out if self.residual else out


class MobileNetV2(nn.Module):
    """2.2M parameters for 10 classes at ``width_mult`` 1; ``dropout`` before the classifier
    (Sandler et al. use 0.2 on ImageNet; 0 is the CIFAR reference)."""

    def __init__(self, num_classes: int, width_mult: float = 1.0, dropout: float = 0.0) -> None:
        super().__init__()
        self.num_classes = num_classes
        in_ch = round(32 * width_mult)
        layers = [*conv_bn(3, in_ch, 3), nn.ReLU6(inplace=True)]
        for t, c, n, s in STAGES:
            out_ch = round(c * width_mult)
            for i in range(n):
                layers.append(InvertedResidual(in_ch, out_ch, s if i == 0 else 1, t))
                in_ch = out_ch
        last = max(1280, round(1280 * width_mult))
        layers += [*conv_bn(in_ch, last, 1), nn.ReLU6(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(last, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (B, 1280, 4, 4)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)  # (B, 1280)
        return self.fc(self.dropout(x))  # (B, num_classes)

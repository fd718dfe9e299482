"""The CIFAR ResNets of He et al. 2016 ("Deep Residual Learning for Image Recognition", §4.2)."""

import torch
import torch.nn.functional as F
from torch import nn

from fmlab.nets.resnet import BasicBlock


class ResNetCifar(nn.Module):
    """3×3 conv (16) → three stages of n basic blocks at 16/32/64 channels and 32/16/8 pixels →
    global average pool → fc. Depth 6n+2: 20, 32, 44, 56, 110 give 0.27M, 0.46M, 0.66M, 0.85M,
    1.7M parameters (He et al. 2016, Table 6). He-normal initialisation as in the paper (§3.4).
    """

    def __init__(self, num_classes: int, depth: int = 20, width: int = 16) -> None:
        super().__init__()
        if (depth - 2) % 6 != 0 or depth < 8:
            raise ValueError(f"depth must be 6n+2 with n >= 1 (20, 32, 44, 56, 110), got {depth}")
        n = (depth - 2) // 6
        self.num_classes = num_classes
        self.conv = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        blocks, in_planes = [], width
        for stage, planes in enumerate((width, 2 * width, 4 * width)):
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(in_planes, planes, stride, option="A"))
                in_planes = planes
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(in_planes, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.conv(x)))  # (B, 16, 32, 32)
        x = self.blocks(x)  # (B, 64, 8, 8)
        x = x.mean((2, 3))  # (B, 64)
        return self.fc(x)  # (B, num_classes)

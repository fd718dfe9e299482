"""ResNet-18/34 (He et al. 2016, Table 1) with the CIFAR stem: a 3×3 conv and no max-pool, so
32×32 images keep their resolution into the first stage (as in kuangliu/pytorch-cifar, the
reference behind the ~95% CIFAR-10 ResNet-18 numbers)."""

import torch
import torch.nn.functional as F
from torch import nn

# Basic blocks per stage (He et al. 2016, Table 1).
BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}


class ShortcutA(nn.Module):
    """Option A: the identity, subsampled by ``stride`` and zero-padded to the new width, so the
    shortcut adds no parameter (§4.2: "we use identity shortcuts in all cases")."""

    def __init__(self, stride: int, extra_channels: int) -> None:
        super().__init__()
        self.stride, self.extra = stride, extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]  # (B, C, H/s, W/s)
        half = self.extra // 2
        return F.pad(x, (0, 0, 0, 0, half, self.extra - half))  # (B, C + extra, H/s, W/s)


class BasicBlock(nn.Module):
    """conv3×3-BN-ReLU-conv3×3-BN plus a shortcut, then ReLU. Where the shape changes the shortcut
    is option B (a 1×1 conv + BN; ResNet-18/34) or option A (``ShortcutA``; the CIFAR ResNets)."""

    def __init__(self, in_planes: int, planes: int, stride: int, option: str = "B") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Identity()
        if (stride != 1 or in_planes != planes) and option == "A":
            self.shortcut = ShortcutA(stride, planes - in_planes)
        elif stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """Stem 3×3 conv (64) → four stages at 64/128/256/512 channels → average pool → fc.
    ResNet-18: 11.2M parameters for 10 classes; ResNet-34: 21.3M."""

    def __init__(self, num_classes: int, depth: int = 18, width: int = 64) -> None:
        super().__init__()
        if depth not in BLOCKS:
            raise ValueError(f"depth must be one of {sorted(BLOCKS)}, got {depth}")
        self.num_classes = num_classes
        self.conv = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        layers, in_planes = [], width
        for stage, n in enumerate(BLOCKS[depth]):
            planes = width * 2**stage
            for i in range(n):
                layers.append(BasicBlock(in_planes, planes, 2 if stage > 0 and i == 0 else 1))
                in_planes = planes
        self.blocks = nn.Sequential(*layers)
        self.fc = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.conv(x)))  # (B, 64, 32, 32)
        x = self.blocks(x)  # (B, 512, 4, 4)
        x = x.mean((2, 3))  # (B, 512)
        return self.fc(x)  # (B, num_classes)

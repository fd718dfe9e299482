"""VGG with batch norm (Simonyan & Zisserman 2015, configurations A and D; BN after every conv as
in Ioffe & Szegedy 2015) and the CIFAR head of kuangliu/pytorch-cifar: the 512×1×1 feature map
of a 32×32 image goes to one linear layer."""

import torch
from torch import nn

# Output channels per conv, "M" a 2×2 max-pool (Simonyan & Zisserman 2015, Table 1).
CONFIGS = {
    11: (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    13: (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
}


class VGG(nn.Module):
    """VGG-11 (9.2M parameters for 10 classes) or VGG-16 (14.7M); ``dropout`` before the
    classifier (0: none, as in the CIFAR reference)."""

    def __init__(self, num_classes: int, depth: int = 16, dropout: float = 0.0) -> None:
        super().__init__()
        if depth not in CONFIGS:
            raise ValueError(f"depth must be one of {sorted(CONFIGS)}, got {depth}")
        self.num_classes = num_classes
        layers, in_ch = [], 3
        for v in CONFIGS[depth]:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(in_ch, v, 3, padding=1, bias=False), nn.BatchNorm2d(v)]
                layers.append(nn.ReLU(inplace=True))
                in_ch = v
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (B, 512, 1, 1) for 32×32 images
        x = torch.flatten(x, 1)  # (B, 512)
        return self.fc(self.dropout(x))  # (B, num_classes)

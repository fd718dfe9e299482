"""EfficientNet-B0 (Tan & Le 2019, Table 1) with CIFAR strides: the stem and the first stride-2
stage (MBConv6 3×3, 24 channels) keep stride 1, so a 32×32 image reaches the last stages at 4×4,
as in fmlab's MobileNetV2. (kuangliu/pytorch-cifar's EfficientNetB0 keeps that stage at stride 2
and ends at 2×2; it also drops the 1280-channel head.) Strides do not change the parameters: for
10 classes it has exactly as many as ``timm.create_model("efficientnet_b0", num_classes=10)``."""

import torch
import torch.nn.functional as F
from torch import nn

# (expansion, kernel, output channels, blocks, first stride) per MBConv stage: Tan & Le Table 1
# stages 2-8, with the ImageNet stride 2 of stage 3 (24 channels) set to 1 for 32×32 images.
STAGES = (
    (1, 3, 16, 1, 1),
    (6, 3, 24, 2, 1),
    (6, 5, 40, 2, 2),
    (6, 3, 80, 3, 2),
    (6, 5, 112, 3, 1),
    (6, 5, 192, 4, 2),
    (6, 3, 320, 1, 1),
)
SE_RATIO = 0.25  # of the block's input channels (Tan & Le; MnasNet's squeeze-excitation)
STEM, HEAD = 32, 1280


def conv_bn_act(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1, act=True):
    layers = [
        nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_ch),
    ]
    return layers + [nn.SiLU(inplace=True)] if act else layers  # SiLU: the paper's swish


class SqueezeExcite(nn.Module):
    """Channel gates from the pooled feature map: 1×1 reduce → swish → 1×1 expand → sigmoid."""

    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = F.adaptive_avg_pool2d(x, 1)  # (B, C, 1, 1)
        w = self.expand(F.silu(self.reduce(w)))
        return x * w.sigmoid()


class MBConv(nn.Module):
    """[1×1 expand →] k×k depthwise → squeeze-excitation → 1×1 linear projection. The residual
    is added only when the block keeps the shape; stochastic depth then drops the whole branch
    per sample with probability ``drop_path`` (Huang et al. 2016), scaling the kept ones."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel: int, stride: int, expansion: int, drop_path: float
    ) -> None:
        super().__init__()
        hidden = in_ch * expansion
        expand = [] if expansion == 1 else conv_bn_act(in_ch, hidden, 1)
        self.layers = nn.Sequential(
            *expand,
            *conv_bn_act(hidden, hidden, kernel, stride, groups=hidden),
            SqueezeExcite(hidden, max(1, int(in_ch * SE_RATIO))),
            *conv_bn_act(hidden, out_ch, 1, act=False),
        )
        self.residual = stride == 1 and in_ch == out_ch
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(x)
        if not self.residual:
            return out
        if self.training and self.drop_path > 0:
            keep = 1.0 - self.drop_path
            mask = torch.rand(x.shape[0], 1, 1, 1, device=x.device) < keep  # (B, 1, 1, 1)
            out = out * mask / keep
        return x + out


class EfficientNetB0(nn.Module):
    """4.02M parameters for 10 classes (5.29M for ImageNet's 1000, Tan & Le's 5.3M).
    ``dropout`` before the classifier and ``drop_path`` (stochastic depth, rising linearly from 0
    at the first block to ``drop_path`` at the last, as in the TF reference and timm): both 0.2
    in Tan & Le's ImageNet training."""

    def __init__(self, num_classes: int, dropout: float = 0.2, drop_path: float = 0.2) -> None:
        super().__init__()
        self.num_classes = num_classes
        layers = conv_bn_act(3, STEM, 3, stride=1)  # stride 2 on ImageNet
        n_blocks = sum(n for *_, n, _ in STAGES)
        in_ch, index = STEM, 0
        for expansion, kernel, out_ch, n, stride in STAGES:
            for i in range(n):
                rate = drop_path * index / n_blocks
                layers.append(
                    MBConv(in_ch, out_ch, kernel, stride if i == 0 else 1, expansion, rate)
                )
                in_ch, index = out_ch, index + 1
        layers += conv_bn_act(in_ch, HEAD, 1)
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(HEAD, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # the TF reference's initialisation
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (B, 1280, 4, 4) for 32×32 images
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)  # (B, 1280)
        return self.fc(self.dropout(x))  # (B, num_classes)

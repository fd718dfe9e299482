"""The LeNet-style ConvNet of PyTorch's CIFAR-10 tutorial (60-minute blitz)."""

import torch
from torch import nn


class ConvNet(nn.Module):
    """conv 3→6 5×5 → pool → conv 6→16 5×5 → pool → fc 400→120 → fc 120→84 → fc 84→classes.

    Layers, activations and PyTorch's default initialisation are those of the tutorial, so its
    reported 53–56% test accuracy after 2 epochs at batch 4 is the reference this net reproduces.
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.relu(self.conv1(x)))  # (B, 6, 14, 14)
        x = self.pool(self.relu(self.conv2(x)))  # (B, 16, 5, 5)
        x = torch.flatten(x, 1)  # (B, 400)
        x = self.relu(self.fc1(x))  # (B, 120)
        x = self.relu(self.fc2(x))  # (B, 84)
        return self.fc3(x)  # (B, num_classes)

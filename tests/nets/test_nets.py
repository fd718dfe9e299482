import pytest
import torch

from fmlab.nets import ConvNet


def test_convnet_is_the_tutorial_net():
    net = ConvNet(10)
    # conv1 456 + conv2 2416 + fc1 48120 + fc2 10164 + fc3 850, as the PyTorch tutorial's Net.
    assert sum(p.numel() for p in net.parameters()) == 62006
    assert [m.__class__.__name__ for m in net.children()] == [
        "Conv2d",
        "Conv2d",
        "MaxPool2d",
        "Linear",
        "Linear",
        "Linear",
        "ReLU",
    ]


@pytest.mark.parametrize("num_classes", [10, 100])
def test_convnet_shapes_and_backward(num_classes):
    net = ConvNet(num_classes)
    x = torch.randn(4, 3, 32, 32)
    logits = net(x)
    assert logits.shape == (4, num_classes)
    logits.logsumexp(1).mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name

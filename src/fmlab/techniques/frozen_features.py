"""A frozen backbone's features, computed once per image and kept on disk: a linear probe
(``task.freeze_backbone=true task.cache_features=true``) then trains its head on them, at the
cost of a few matrix products an epoch instead of a forward pass of the backbone per image.

The features of an image are what the net's head receives (read by a forward pre-hook, so any
net whose head is its last layer works: timm's classifiers, fmlab's own nets). They depend on
the backbone's weights, the images and how the data prepares them (resize, mean, std), and on
nothing else; the cache key hashes all three, so the ImageNet weights' features are computed
once for every seed and label count of a table, and a seed's random weights get their own.
"""

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from fmlab.run import cache
from fmlab.techniques.transfer import in_head

log = logging.getLogger(__name__)
VERSION = 1  # bump when what is stored changes


def backbone_sha256(net: nn.Module, head: str) -> str:
    """The hash of every tensor of ``net`` outside its head: what its features depend on."""
    digest = hashlib.sha256()
    for name, tensor in sorted(net.state_dict().items()):
        if not in_head(name, head):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


@torch.no_grad()  # not inference_mode: the head trains on these tensors
def head_inputs(
    net: nn.Module,
    head: str,
    images: torch.Tensor,
    prepare: Callable[[torch.Tensor], torch.Tensor],
    device: torch.device,
    batch_size: int,
) -> torch.Tensor:
    """What ``net``'s head receives for each of ``images`` (uint8, N×C×H×W), the net in eval
    mode: (N, features) float32 on the CPU."""
    seen: list[torch.Tensor] = []
    hook = net.get_submodule(head).register_forward_pre_hook(
        lambda module, args: seen.append(args[0].float().cpu())
    )
    was_training = net.training
    net.eval().to(device)
    try:
        for start in range(0, len(images), batch_size):
            net(prepare(images[start : start + batch_size].to(device)))
    finally:
        hook.remove()
        net.train(was_training)
    return torch.cat(seen).flatten(1)


def cached_head_inputs(
    net: nn.Module,
    head: str,
    backbone: str,
    images: torch.Tensor,
    prepare: Callable[[torch.Tensor], torch.Tensor],
    preparation: dict,
    folder: Path,
    device: torch.device,
    batch_size: int,
) -> torch.Tensor:
    """``head_inputs`` through the cache under ``folder``: built once per backbone hash, image
    set and ``preparation`` (the data's resize, mean and std), read back after that."""
    digest = hashlib.sha256(json.dumps([VERSION, backbone, preparation]).encode())
    digest.update(images.contiguous().numpy().tobytes())
    key = digest.hexdigest()[:20]

    def build(tmp: Path) -> dict:
        log.info(
            "Computing the frozen backbone's features of %d images (cache %s)", len(images), key
        )
        features = head_inputs(net, head, images, prepare, device, batch_size)
        torch.save(features, tmp / "features.pt")
        return {"backbone_sha256": backbone, "preparation": preparation, "images": len(images)}

    cache.ensure(folder / key, build, "frozen-feature cache")
    return torch.load(folder / key / "features.pt", weights_only=True)

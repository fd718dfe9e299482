"""Any timm image model as an fmlab net: ``model=timm model.name=<timm name>``.

timm is imported inside the functions, so that ``fmlab-train --help`` and runs of fmlab's own
nets never pay for importing it.
"""

import difflib
import os
from pathlib import Path

import torch
from torch import nn

from fmlab.errors import FmlabError
from fmlab.hub import efficientnet_keys


class TimmNet(nn.Module):
    """``timm.create_model(name, num_classes=num_classes, ...)``; the data hands over
    ``num_classes``. ``pretrained``: false (random weights), true (timm's own weights from the
    Hugging Face hub, or its local cache) or the path of a weights file (.safetensors, .pth,
    .bin) in timm's names or efficientnet_pytorch's; either way a classifier of another size
    than ``num_classes`` is replaced by a fresh one."""

    def __init__(
        self,
        name: str,
        num_classes: int,
        pretrained: bool | str = False,
        drop_rate: float = 0.0,
        drop_path_rate: float | None = None,
    ) -> None:
        super().__init__()
        import timm

        self.num_classes = num_classes  # read by the classification task's metrics

        if not timm.is_model(name.partition(".")[0]):
            close = difflib.get_close_matches(name.partition(".")[0], timm.list_models(), n=6)
            raise FmlabError(
                f"model.name={name!r} is not a timm model. Pick one from "
                f"`timm.list_models()` (close names: {', '.join(close) or 'none'})."
            )
        kwargs = dict(num_classes=num_classes, drop_rate=drop_rate)
        if drop_path_rate is not None:  # only nets with residual blocks take it
            kwargs["drop_path_rate"] = drop_path_rate
        if pretrained is True:
            self.model = _from_hub(name, kwargs)
        elif pretrained:
            self.model = _from_file(name, Path(pretrained).expanduser(), kwargs)
        else:
            self.model = timm.create_model(name, pretrained=False, **kwargs)
        # The input the pretrained weights expect: mean, std and input_size, for the data.
        self.pretrained_cfg = dict(self.model.pretrained_cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)  # (B, num_classes)


def _from_hub(name: str, kwargs: dict) -> nn.Module:
    import timm
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return timm.create_model(name, pretrained=True, **kwargs)
    except (LocalEntryNotFoundError, OSError) as err:
        # Offline (HF_HUB_OFFLINE=1, or no network) and not in the hub cache.
        raise FmlabError(_offline_message(name, err)) from err


def _offline_message(name: str, err: Exception) -> str:
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    hub_id = getattr(cfg, "hf_hub_id", None)
    where = (
        f"https://huggingface.co/{hub_id}/resolve/main/model.safetensors"
        if hub_id
        else getattr(cfg, "url", None) or "the model's page on https://huggingface.co/timm"
    )
    offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") else ""
    return (
        f"model.pretrained=true: timm could not fetch the weights of {name!r}{offline} "
        f"({type(err).__name__}: not on the hub's local cache nor reachable). "
        f"On a machine with network, download {where}, copy it to this machine (e.g. to "
        f"$FMLAB_DATA_DIR/weights/{name}.safetensors) and pass its path as "
        "model.pretrained=<that file>; or set model.pretrained=false to start from random weights."
    )


def _from_file(name: str, path: Path, kwargs: dict) -> nn.Module:
    import timm

    state = read_weights(path)
    if efficientnet_keys.is_efficientnet_pytorch(state):
        classes = state["_fc.weight"].shape[0] if "_fc.weight" in state else 0
        names = timm.create_model(name, pretrained=False, num_classes=classes).state_dict()
        overlay = dict(state_dict=efficientnet_keys.to_timm(state, names))
    else:
        overlay = dict(file=str(path))
        head = getattr(timm.models.get_pretrained_cfg(name), "classifier", None) or "classifier"
        head = head if isinstance(head, str) else head[0]
        classes = state[f"{head}.weight"].shape[0] if f"{head}.weight" in state else 0
    # Built with the file's own classifier (0: none), so that timm loads every tensor strictly
    # (it loads loosely, silently skipping what does not fit, once it re-sizes the classifier);
    # then a fresh classifier of num_classes outputs replaces it if the sizes differ.
    overlay["num_classes"] = classes
    try:
        model = timm.create_model(
            name,
            pretrained=True,
            pretrained_cfg_overlay=overlay,
            **{**kwargs, "num_classes": classes},
        )
    except RuntimeError as err:  # load_state_dict: missing, unexpected or mis-shaped tensors
        raise FmlabError(
            f"model.pretrained={str(path)!r} does not fit timm's {name!r} "
            f"({_first_lines(err)}). Pass a "
            "weights file saved from the same architecture (timm's names, or "
            "efficientnet_pytorch's for its EfficientNets), or change model.name to match it."
        ) from err
    if classes != kwargs["num_classes"]:
        model.reset_classifier(kwargs["num_classes"])
    return model


def read_weights(path: Path) -> dict:
    """A state dict from .safetensors, or from a torch file read with ``weights_only=True`` (a
    weights file must never be able to run code)."""
    if not path.is_file():
        raise FmlabError(
            f"model.pretrained={str(path)!r}: no such file. Pass the path of a .safetensors or "
            ".pth weights file, true for timm's own weights, or false for random ones."
        )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise FmlabError(
            f"model.pretrained={str(path)!r} is not a readable weights file ({err}). Pass a "
            ".safetensors file or a .pth holding a state dict of tensors."
        ) from err
    for wrapper in ("state_dict", "model"):  # training checkpoints nest the weights
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    return state


def _first_lines(err: Exception, limit: int = 300) -> str:
    """load_state_dict lists every key it misses: its start says enough."""
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[:limit] + " ..."

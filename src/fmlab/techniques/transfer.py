"""Transfer learning: initialise a net from a fmlab checkpoint and find its classification head.

The head is the last ``nn.Linear`` whose outputs are the net's classes (``fc`` of a ResNet,
``fc3`` of the ConvNet, ``head`` of a ViT): when the class count differs from the checkpoint's,
its tensors do not match in shape, are skipped, and keep their fresh initialisation.
"""

import logging
from pathlib import Path

from torch import nn

from fmlab.data.tokenizers import saved_state
from fmlab.errors import FmlabError
from fmlab.run.checkpoints import load_checkpoint

log = logging.getLogger(__name__)


def head_name(net: nn.Module) -> str:
    """Name of the net's classification head: its last Linear with ``num_classes`` outputs."""
    heads = [
        name
        for name, m in net.named_modules()
        if isinstance(m, nn.Linear) and m.out_features == getattr(net, "num_classes", None)
    ]
    if not heads:
        raise FmlabError(
            f"{type(net).__name__} has no nn.Linear with num_classes outputs, so its head cannot "
            "be told from its backbone. Use task.freeze_backbone=false and task.head_lr=null "
            "with this net."
        )
    return heads[-1]


def in_head(name: str, head: str) -> bool:
    """Whether parameter or module ``name`` belongs to the head module ``head``."""
    return name == head or name.startswith(head + ".")


def read_init_from(path: str) -> dict:
    """The checkpoint ``init_from`` names, loaded once (data only, or refused with the fix)."""
    return load_checkpoint(Path(path).expanduser(), key="init_from", needs_config=False)


def lora_base_source(checkpoint: dict) -> dict | None:
    """For an adapter-only checkpoint (fmlab.techniques.lora) whose base was initialised from
    another checkpoint: that checkpoint, read, to rebuild the base from. Else None."""
    init_from = checkpoint["hyper_parameters"]["config"].get("init_from")
    if "lora_base" not in checkpoint or not init_from:
        return None
    key = "init_from (the base of the checkpoint's LoRA adapters)"
    return load_checkpoint(Path(init_from).expanduser(), key=key, needs_config=False)


def take_tokenizer(datamodule, checkpoint: dict, path: str) -> None:
    """A fine-tuning run reads its text with the tokenizer of the checkpoint it starts from, never
    a newly trained one: token ids only mean what the pre-trained embedding learnt under that
    tokenizer. Lightning keeps each data module's state under its class name; any of them that
    holds a tokenizer is taken (pre-trained on a corpus, fine-tuned on a labelled set)."""
    use = getattr(datamodule, "use_tokenizer", None)
    # net_tokenizer: a corpus's tokenizer as the net saw it (with BERT's special tokens).
    if use is not None and (state := saved_state(checkpoint)):
        use(state.get("net_tokenizer") or state["tokenizer"], path)


def init_from_checkpoint(net: nn.Module, path: str, checkpoint: dict | None = None) -> dict:
    """Load into ``net`` every tensor of the checkpoint's net whose name and shape match; return
    (and log) what was and was not loaded. The checkpoint's weights are what fmlab-train saved as
    the model (the averaged weights when EMA was on)."""
    file = Path(path).expanduser()
    checkpoint = checkpoint if checkpoint is not None else read_init_from(path)
    theirs = {
        k.removeprefix("net."): v
        for k, v in checkpoint.get("state_dict", {}).items()
        if k.startswith("net.")
    }
    ours = net.state_dict()
    loaded = [k for k, v in theirs.items() if k in ours and ours[k].shape == v.shape]
    reshaped = {
        k: {"checkpoint": list(v.shape), "net": list(ours[k].shape)}
        for k, v in theirs.items()
        if k in ours and ours[k].shape != v.shape
    }
    if not loaded:
        raise FmlabError(
            f"init_from={path!r} shares no tensor (by name and shape) with "
            f"{type(net).__name__}: it was trained with another network. Pass a checkpoint of "
            "the same network family."
        )
    net.load_state_dict({k: theirs[k] for k in loaded}, strict=False)
    report = {
        "from": str(file.resolve()),
        "loaded": len(loaded),
        "of": len(ours),
        "shape_differs": reshaped,  # kept freshly initialised, e.g. a head for other classes
        "not_in_checkpoint": sorted(set(ours) - set(theirs)),
        "unused_from_checkpoint": sorted(set(theirs) - set(ours)),
    }
    log.info(
        "Initialised %d of %d tensors of %s from %s; kept fresh (shape differs): %s; "
        "not in the checkpoint: %s; unused from the checkpoint: %s",
        report["loaded"],
        report["of"],
        type(net).__name__,
        file,
        reshaped or "none",
        report["not_in_checkpoint"] or "none",
        report["unused_from_checkpoint"] or "none",
    )
    return report

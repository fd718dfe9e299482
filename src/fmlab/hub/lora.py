"""LoRA adapters (Hu et al. 2021) through peft, on any plain nn.Module: fmlab's GPT or a
Hugging Face model wrapped by fmlab.hub.models.

peft's ``inject_adapter_in_model`` replaces each targeted layer in place by one holding the
frozen base layer and the low-rank A and B; module names match by suffix, as in peft's
``get_peft_model``. Checkpoints keep the whole state dict (base and adapters), so they resume
and export as any other; the run record names the base by the hash of its weights.
"""

import hashlib
import logging

import torch
from torch import nn

from fmlab.errors import FmlabError

log = logging.getLogger(__name__)


def weights_sha256(net: nn.Module) -> str:
    """The hash of every tensor of ``net`` by name: the identity of a base model."""
    digest = hashlib.sha256()
    for name, tensor in sorted(net.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def apply_lora(
    net: nn.Module,
    r: int,
    alpha: float,
    dropout: float,
    target_modules: list[str],
    also_train: tuple[str, ...] = (),
) -> dict:
    """Adapters on the layers named ``target_modules``; only they train, and the modules named
    in ``also_train`` (a classifier's new head). Returns the record: the settings, the base's
    hash, trainable and total parameter counts."""
    from peft import LoraConfig, inject_adapter_in_model

    if r < 1:
        raise FmlabError(f"task.lora.r={r!r}: give the adapters' rank, an integer of 1 or more.")
    base_sha256 = weights_sha256(net)
    config = LoraConfig(
        r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules)
    )
    try:
        inject_adapter_in_model(config, net)
    except ValueError as err:
        linears = sorted(
            {n.rsplit(".", 1)[-1] for n, m in net.named_modules() if type(m).__name__ in LAYERS}
        )
        raise FmlabError(
            f"task.lora.target_modules={list(target_modules)!r} names no layer of "
            f"{type(net).__name__} ({str(err).splitlines()[0]}). Its linear layers end in: "
            f"{', '.join(linears)} (fmlab's GPT: c_attn, c_proj, mlp.0, mlp.2)."
        ) from None
    for name, p in net.named_parameters():
        p.requires_grad_("lora_" in name or any(name.startswith(m + ".") for m in also_train))
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    total = sum(p.numel() for p in net.parameters())
    log.info("LoRA: %d of %d parameters train (%.2f%%)", trainable, total, 100 * trainable / total)
    return {
        "r": r,
        "alpha": alpha,
        "dropout": dropout,
        "target_modules": list(target_modules),
        "base_sha256": base_sha256,
        "trainable_params": trainable,
        "total_params": total,
    }


LAYERS = ("Linear", "Conv1D")  # what LoRA adapts: torch's Linear and GPT-2's Conv1D


def merge_lora(net: nn.Module) -> nn.Module:
    """Fold every adapter into its base layer (W + alpha/r · B·A) and put the base layer back in
    its place: the net has its original modules and names again, with the same outputs."""
    from peft.tuners.lora import LoraLayer

    for name, module in list(net.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge()
            parent, _, child = name.rpartition(".")
            setattr(net.get_submodule(parent), child, module.get_base_layer())
    return net


def lora_settings(task_config: dict | None) -> dict | None:
    """The ``task.lora`` of a run config when it asks for adapters (as plain values, for the
    checkpoint's hyper-parameters), else None."""
    lora = (task_config or {}).get("lora")
    if not lora or not lora.get("target_modules"):
        return None
    return {**lora, "target_modules": [str(m) for m in lora["target_modules"]]}

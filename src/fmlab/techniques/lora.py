"""LoRA adapters (Hu et al. 2021) through peft, on any plain nn.Module: fmlab's GPT or a
Hugging Face model wrapped by fmlab.hub.models.

peft's ``inject_adapter_in_model`` replaces each targeted layer in place by one holding the
frozen base layer and the low-rank A and B; module names match by suffix, as in peft's
``get_peft_model``.

Checkpoints hold only what trains (the adapters, a classifier's head) and the record of the base:
where it came from and ``base_sha256``, the hash of the frozen tensors they leave out. A reader
rebuilds the base from the run's config (its seed, ``init_from`` or ``model.name_or_path``),
adapts it the same way, and takes the adapters only if the rebuilt base has that same hash.
"""

import hashlib
import logging

import torch
from torch import nn

from fmlab.errors import FmlabError

log = logging.getLogger(__name__)


def base_sha256(net: nn.Module) -> str:
    """The hash of the frozen parameters of an adapted ``net`` by name, named as in the base model
    (without peft's ``.base_layer``): exactly what an adapter-only checkpoint leaves out."""
    digest = hashlib.sha256()
    for name, tensor in sorted(frozen(net).items()):
        digest.update(name.replace(".base_layer.", ".").encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def frozen(net: nn.Module) -> dict[str, torch.Tensor]:
    """The parameters of ``net`` that do not train, by every name its state dict gives them (a
    tied one, GPT's ``lm_head`` and ``wte``, under each)."""
    named = net.named_parameters(remove_duplicate=False)
    return {name: p for name, p in named if not p.requires_grad}


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
            f"{', '.join(linears)} (fmlab's GPT: c_attn, c_proj, mlp.0, mlp.2; fmlab's BERT: qkv, "
            "proj, mlp.0, mlp.2)."
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
        "base_sha256": base_sha256(net),
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


def base_identity(config: dict) -> str:
    """Where a run's base model comes from, in the words of its config."""
    if config.get("init_from"):
        return f"init_from={config['init_from']}"
    if name := config.get("model", {}).get("name_or_path"):
        return f"model.name_or_path={name}"
    return f"random init, seed={config.get('seed')}"


def adapters_only(state: dict, net: nn.Module, prefix: str) -> dict:
    """``state`` (the tensors of ``net`` under ``prefix``, and others) without the frozen base."""
    base = {prefix + name for name in frozen(net)}
    return {k: v for k, v in state.items() if k not in base}


def with_base(net: nn.Module, state: dict, saved: dict, identity: str, key: str, prefix: str):
    """An adapter-only ``state`` completed with ``net``'s own frozen tensors (under ``prefix``),
    once they are the base the adapters were trained on: ``saved`` is the checkpoint's record
    of it, ``identity`` where the base of ``net`` came from."""
    built = base_sha256(net)
    if built != saved["sha256"]:
        raise FmlabError(
            f"{key} holds LoRA adapters trained on the base {saved['identity']} (base_sha256 "
            f"{saved['sha256']}), but the base given here, {identity}, has base_sha256 {built}: "
            "the adapters would be applied to other weights. Give the run the base they were "
            "trained on (the same init_from file, model.name_or_path and seed), or train new "
            "adapters on this base."
        )
    return {**{prefix + k: v for k, v in frozen(net).items()}, **state}

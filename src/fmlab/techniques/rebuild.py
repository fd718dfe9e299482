"""A net built from its config, and rebuilt from an fmlab-train checkpoint.

Every reader of a checkpoint (fmlab-eval, fmlab-sample, fmlab-export, FID features, ``init_from``
of an adapter-only checkpoint) rebuilds its net here: sized by the ``net_args`` training sized it
with (kept in the checkpoint), never by a tokenizer or data set built again, and with a LoRA run's
frozen base rebuilt from the run's config and checked against the hash the adapters were trained on.
"""

import inspect

import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from fmlab.data.tokenizers import saved_tokenizer
from fmlab.errors import FmlabError
from fmlab.techniques.lora import apply_lora, base_identity, lora_settings, merge_lora, with_base
from fmlab.techniques.transfer import init_from_checkpoint, lora_base_source


def build_net(model_cfg: DictConfig, net_args: dict, offered_by: str = "the data"):
    """The net, given what the data offers (``net_args``: num_classes, vocab_size, ...) that its
    constructor takes; a net that needs something the data does not offer is refused."""
    params = inspect.signature(get_class(model_cfg._target_)).parameters
    takes = {k: v for k, v in net_args.items() if k in params}
    missing = [
        name
        for name, p in params.items()
        if p.default is p.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and name not in model_cfg
        and name not in takes
    ]
    if missing:
        raise FmlabError(
            f"model {model_cfg._target_} needs {missing}, which {offered_by} does not provide "
            f"(it provides {sorted(net_args)}). Pick a model made for this data, or a data set "
            "that provides those values."
        )
    return instantiate(model_cfg, **takes)


def base_net(cfg: DictConfig, net_args: dict, source: dict | None = None, offered_by="the data"):
    """``(net, transfer)``: the net a run starts from, initialised from ``source`` (the checkpoint
    ``init_from`` names, read) when given, and what that loaded. A LoRA run seeds its init here:
    its frozen base is not checkpointed, so every reader rebuilds it from the config alone."""
    if lora_settings(cfg.task) and cfg.get("seed") is not None:
        torch.manual_seed(cfg.seed)
    net = build_net(cfg.model, net_args, offered_by)
    if source is not None and "lora_base" in source:  # an adapter-only init_from: made whole
        state = merge_lora(rebuild_net(source, key="init_from")).state_dict()
        source = {**source, "state_dict": {f"net.{k}": v for k, v in state.items()}}
    transfer = init_from_checkpoint(net, cfg.init_from, source) if source is not None else None
    return net, transfer


def checkpoint_base(checkpoint: dict) -> nn.Module:
    """The net a checkpoint's run started from, before its adapters and trained weights: its
    config and net_args, its seed, its ``init_from``."""
    config = OmegaConf.create(checkpoint["hyper_parameters"]["config"])
    net_args = net_args_of(checkpoint)
    return base_net(config, net_args, lora_base_source(checkpoint), "the checkpoint")[0]


def rebuild_net(checkpoint: dict, key: str = "ckpt_path") -> nn.Module:
    """The trained net of an fmlab-train checkpoint (its LoRA adapters in place), in eval mode."""
    config = checkpoint["hyper_parameters"]["config"]
    net = checkpoint_base(checkpoint)
    state = {k[4:]: v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}
    if lora := lora_settings(config.get("task")):  # adapters in place, as the task trained them
        # What trains beside the adapters (a classifier's head) is what the checkpoint kept.
        kept = {k.rsplit(".", 1)[0] for k in state if "lora_" not in k}
        apply_lora(net, **lora, also_train=tuple(kept) if "lora_base" in checkpoint else ())
    if saved := checkpoint.get("lora_base"):  # adapters only: the rebuilt base, if it is theirs
        state = with_base(net, state, saved, base_identity(config), key, "")
    net.load_state_dict(state)
    return net.eval()


def net_args_of(checkpoint: dict) -> dict:
    """What training sized the net with. Checkpoints of fmlab before 0.2 kept it only for LoRA
    runs: for those it is read as their readers read it then (the tokenizer and block size of a
    language model, the weights of a Bert, the data config of an image classifier)."""
    hp = checkpoint["hyper_parameters"]
    if "net_args" in hp:
        return dict(hp["net_args"])
    config = hp["config"]
    tokenizer = saved_tokenizer(checkpoint)
    if tokenizer is None:  # images: the data's own arguments (CIFAR-10's num_classes)
        return dict(instantiate(config["data"]).net_args)
    weights = {k[4:]: v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}
    if "tok_emb.weight" not in weights:  # a language model
        return {"vocab_size": tokenizer.vocab_size, "block_size": config["data"]["block_size"]}
    special = getattr(tokenizer, "special_ids", None)
    return {  # a Bert: its sizes read off its weights
        "vocab_size": len(weights["tok_emb.weight"]),
        "max_length": len(weights["pos_emb.weight"]),
        "num_classes": len(weights["classifier.weight"]),
        # As the data padded: with [PAD] where the tokenizer has one, else with an id past it.
        "pad_id": special["pad"] if special else tokenizer.vocab_size,
    }

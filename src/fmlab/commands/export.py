"""fmlab-export ckpt_path=... format=hf out=DIR: a checkpoint's net for the ecosystem.

``format=hf`` writes a transformers folder (config.json, model.safetensors): fmlab's GPT as a
``GPT2LMHeadModel``, fmlab's Bert as a ``BertForMaskedLM`` (task=masked_lm) or
``BertForSequenceClassification`` (task=classification), a Hugging Face model (model=hf_causal_lm)
as itself. Beside it the tokenizer: ``fmlab_tokenizer.json`` always (fmlab's own,
``tokenizer_from_dict`` reads it), and for the bpe, wordpiece and hf tokenizers also
``tokenizer.json`` + ``tokenizer_config.json``, which ``AutoTokenizer.from_pretrained(DIR)`` reads.
transformers has no reader for fmlab's char and tiktoken tokenizers (nor for bpe with BERT's
special tokens): with those, encode and decode by ``fmlab_tokenizer.json``.

``format=safetensors`` writes the net's plain state dict (any net, vision ones too) as
``model.safetensors`` (of an adapter-only LoRA checkpoint: the adapters alone).
``merge_lora=true`` folds LoRA adapters into their base (rebuilt from the run's config) first.
"""

import json
import logging
import os
from pathlib import Path

import torch
from omegaconf import DictConfig

from fmlab.data.tokenizers import saved_state, saved_tokenizer
from fmlab.errors import FmlabError
from fmlab.nets.bert import Bert
from fmlab.nets.gpt import GPT
from fmlab.run.checkpoints import load_checkpoint
from fmlab.techniques.lora import lora_settings, merge_lora
from fmlab.techniques.rebuild import rebuild_net

log = logging.getLogger(__name__)

FORMATS = ("hf", "safetensors")


def export(cfg: DictConfig) -> Path:
    path, out = Path(cfg.ckpt_path).expanduser(), Path(cfg.out).expanduser()
    if cfg.format not in FORMATS:
        raise FmlabError(f"format={cfg.format!r}: use one of {', '.join(FORMATS)}.")
    checkpoint = load_checkpoint(path)
    lora = lora_settings(checkpoint["hyper_parameters"]["config"].get("task"))
    if cfg.merge_lora and lora is None:
        raise FmlabError(
            f"merge_lora=true, but ckpt_path={str(path)!r} has no LoRA adapters (its "
            "task.lora.target_modules is null). Drop merge_lora."
        )
    if lora and not cfg.merge_lora and cfg.format == "hf":
        raise FmlabError(
            f"ckpt_path={str(path)!r} holds LoRA adapters, which a transformers folder cannot "
            "carry beside the base weights. Pass merge_lora=true to fold them into the weights, "
            "or format=safetensors to keep them apart."
        )
    out.mkdir(parents=True, exist_ok=True)
    if cfg.format == "safetensors" and not cfg.merge_lora:
        prefix = "net."
        state = checkpoint["state_dict"]
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        save_safetensors(state, out / "model.safetensors")
    else:
        tokenizer = saved_tokenizer(checkpoint)
        if tokenizer is None and cfg.format == "hf":
            raise FmlabError(
                f"format=hf writes language models with their tokenizer, and ckpt_path="
                f"{str(path)!r} holds none. Use format=safetensors for its plain weights."
            )
        net = rebuild_net(checkpoint)
        # The classes of a classifier, in the order of its outputs (a Bert fine-tuned on labels);
        # masked-LM pre-training on labelled text has classes in its data, and no classifier.
        task = checkpoint["hyper_parameters"]["config"]["task"]["_target_"]
        classifies = not task.endswith(("MaskedLM", "LanguageModel"))
        labels = (saved_state(checkpoint) or {}).get("classes") if classifies else None
        if cfg.merge_lora:
            merge_lora(net)
        if cfg.format == "safetensors":
            save_safetensors(net.state_dict(), out / "model.safetensors")
        else:
            save_hf(net, tokenizer, out, labels)
    shared_as_made_here(out)
    log.info("Exported %s as %s: %s", path, cfg.format, out)
    return out


def shared_as_made_here(out: Path) -> None:
    """Every exported file with the mode a new file gets here: transformers writes its weights
    through a private temporary file (0600), and a folder handed on is read by others."""
    mask = os.umask(0)
    os.umask(mask)
    for path in out.iterdir():
        if path.is_file():
            path.chmod(0o666 & ~mask)


def save_safetensors(state: dict, path: Path) -> None:
    from safetensors.torch import save_file

    # Each tensor its own copy: safetensors refuses tensors sharing memory (tied embeddings).
    save_file({k: v.detach().contiguous().clone() for k, v in state.items()}, str(path))


def save_hf(net: torch.nn.Module, tokenizer, out: Path, labels: list[str] | None = None) -> None:
    from fmlab.hub.bert import to_bert
    from fmlab.hub.gpt2 import to_gpt2
    from fmlab.hub.models import HFCausalLM

    if isinstance(net, GPT):
        model = to_gpt2(net, tokenizer.eot_id)
    elif isinstance(net, Bert):
        model = to_bert(net, labels)
    elif isinstance(net, HFCausalLM):
        model = net.model
    else:
        raise FmlabError(
            f"format=hf writes fmlab's GPT and Bert, and Hugging Face models; this checkpoint's "
            f"net is {type(net).__name__}. Use format=safetensors for its plain weights."
        )
    model.save_pretrained(out)
    save_tokenizer(tokenizer, out)


def save_tokenizer(tokenizer, out: Path) -> None:
    data = tokenizer.to_dict()
    (out / "fmlab_tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    if data["kind"] == "wordpiece":
        from fmlab.hub.bert import save_wordpiece

        save_wordpiece(tokenizer, out)
        return
    if data["kind"] not in ("bpe", "hf"):
        return  # char and tiktoken: transformers has no reader for them
    (out / "tokenizer.json").write_text(data["json"], encoding="utf-8")
    eot_id = tokenizer.eot_id
    eos = tokenizer.tokenizer.id_to_token(eot_id) if eot_id is not None else None
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": eos, "bos_token": eos}
    (out / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")

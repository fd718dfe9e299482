"""fmlab-sample ckpt_path=... prompt="ROMEO:": text from a language-model checkpoint, decoded by
the tokenizer saved inside that checkpoint (never rebuilt from the data)."""

import logging
from pathlib import Path

import torch
from omegaconf import DictConfig

from fmlab.data.tokenizers import saved_tokenizer
from fmlab.errors import FmlabError
from fmlab.run.checkpoints import load_checkpoint
from fmlab.techniques.rebuild import rebuild_net

log = logging.getLogger(__name__)


@torch.no_grad()
def generate(
    net,
    idx: torch.Tensor,
    max_new_tokens: int,
    block_size: int,
    temperature=1.0,
    top_k=None,
    greedy=False,
) -> torch.Tensor:
    """nanoGPT's sampling loop for any ``net(idx) -> (logits, loss)``; idx (B, T) -> (B, T + new).
    The context is cut to the last ``block_size`` tokens, the longest the net was trained on.
    ``greedy``: the most likely token each step, as transformers' ``generate(do_sample=False)``."""
    for _ in range(max_new_tokens):
        logits, _ = net(idx[:, -block_size:])
        logits = logits[:, -1, :]  # (B, vocab_size)
        if greedy:
            next_id = logits.argmax(dim=-1, keepdim=True)  # (B, 1)
        else:
            logits = logits / temperature
            if top_k is not None:
                kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, [-1]]
                logits[logits < kth] = -float("inf")
            next_id = torch.multinomial(torch.softmax(logits, dim=-1), num_samples=1)  # (B, 1)
        idx = torch.cat((idx, next_id), dim=1)
    return idx


def load_language_model(path: Path, device: str):
    """(net, tokenizer, block_size) from an fmlab-train checkpoint of a language model."""
    checkpoint = load_checkpoint(path)
    config = checkpoint["hyper_parameters"]["config"]
    tokenizer = saved_tokenizer(checkpoint)
    if "block_size" not in config["data"]:
        raise FmlabError(
            f"ckpt_path={str(path)!r} is not a language-model checkpoint; pass one written by "
            "fmlab-train with a text data set."
        )
    if tokenizer is None:
        raise FmlabError(
            f"ckpt_path={str(path)!r} is a language model trained on token ids alone and holds no "
            "tokenizer (a nanoGPT folder without meta.pkl), so no prompt can be read nor text "
            "written. Export its weights (fmlab-export format=safetensors), or train on the text "
            "itself with data.tokenizer=tiktoken (GPT-2's)."
        )
    net = rebuild_net(checkpoint)
    return net.to(device), tokenizer, config["data"]["block_size"]


def sample(cfg: DictConfig) -> list[str]:
    torch.manual_seed(cfg.seed)
    net, tokenizer, block_size = load_language_model(Path(cfg.ckpt_path).expanduser(), cfg.device)
    prompt = torch.as_tensor(tokenizer.encode(cfg.prompt), device=cfg.device)
    if len(prompt) == 0:
        raise FmlabError("prompt is empty after tokenising: give at least one character.")
    idx = prompt.unsqueeze(0).repeat(cfg.num_samples, 1)  # (num_samples, T)
    out = generate(net, idx, cfg.max_new_tokens, block_size, cfg.temperature, cfg.top_k, cfg.greedy)
    texts = [tokenizer.decode(row.tolist()) for row in out]
    path = Path(cfg.paths.output_dir) / "samples.txt"
    path.write_text("\n---------------\n".join(texts), encoding="utf-8")
    for text in texts:
        print(text, "\n---------------", flush=True)
    log.info("Samples: %s", path)
    return texts

"""GPT (Radford et al. 2019), as in nanoGPT's model.py: pre-LayerNorm blocks, causal attention by
``scaled_dot_product_attention``, GELU MLP, learned positions, tied embeddings, GPT-2 init; in the
standard parametrization (SP) or the maximal update parametrization (μP; Yang et al. 2022, "Tensor
Programs V"), whose best hyper-parameters do not move with the width."""

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (torch's has none to switch off before 2.1's ``bias=``)."""

    def __init__(self, dim: int, bias: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(nn.Module):
    """``scale`` multiplies the attention logits: None is SDPA's 1/√head_dim."""

    def __init__(
        self, n_embd: int, n_head: int, dropout: float, bias: bool, scale: float | None = None
    ) -> None:
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd={n_embd} is not divisible by n_head={n_head}")
        self.n_head, self.dropout, self.scale = n_head, dropout, scale
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)  # each (B, T, C)
        # (B, n_head, T, head_dim)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=True,
            scale=self.scale,
        )
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.resid_dropout(self.c_proj(y))


class Block(nn.Module):
    def __init__(
        self, n_embd: int, n_head: int, dropout: float, bias: bool, scale: float | None = None
    ) -> None:
        super().__init__()
        self.ln_1 = LayerNorm(n_embd, bias)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout, bias, scale)
        self.ln_2 = LayerNorm(n_embd, bias)
        self.mlp = nn.Sequential(
            nn.Linear(n_embd, 4 * n_embd, bias=bias),
            nn.GELU(),
            nn.Linear(4 * n_embd, n_embd, bias=bias),
            nn.Dropout(dropout),
        )
        self.mlp[2].is_residual_projection = True
        self.attn.c_proj.is_residual_projection = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """``forward(idx, targets=None) -> (logits, loss)``; idx (B, T) with T ≤ block_size.

    ``vocab_size`` and ``block_size`` come from the data. ``vocab_multiple`` rounds the embedding
    and output rows up to a multiple (nanoGPT pads GPT-2's 50257 to 50304 = 786 · 64 for faster
    matmuls); the loss sees the padded logits, as nanoGPT's does, the caller only real tokens'.

    ``parametrization="mup"`` is μP as Dey, Anthony & Hestness (2024, "The Practitioner's Guide to
    the Maximal Update Parameterization", Table 3) tabulate it for Adam, relative to the network
    at ``mup_base_width``, whose hyper-parameters are tuned; with m = n_embd / mup_base_width:
    the hidden matrices' init variance is divided by m (and their Adam lr, see ``mup_groups``),
    the logits are multiplied by ``mup_output_alpha`` / m, the embeddings by ``mup_input_alpha``,
    and attention logits scale as 1/head_dim instead of 1/√head_dim. The heads keep their number
    and widen (Yang et al.'s setting), so the attention scale is √(base head_dim) / head_dim: at
    ``n_embd == mup_base_width`` the μP net is the SP net, weight for weight.
    """

    def __init__(
        self,
        vocab_size: int,
        block_size: int,
        n_layer: int = 12,
        n_head: int = 12,
        n_embd: int = 768,
        dropout: float = 0.0,
        bias: bool = False,
        vocab_multiple: int = 1,
        init_std: float = 0.02,
        parametrization: Literal["sp", "mup"] = "sp",
        mup_base_width: int | None = None,
        mup_input_alpha: float = 1.0,
        mup_output_alpha: float = 1.0,
    ) -> None:
        super().__init__()
        self.vocab_size, self.block_size = vocab_size, block_size
        self.n_layer, self.n_head, self.n_embd = n_layer, n_head, n_embd
        self.parametrization = parametrization
        # The width multiplier m and the multipliers μP puts on the embeddings, the logits and
        # the attention logits; all 1 (and SDPA's own attention scale) under SP.
        self.width_mult, self.input_mult, self.output_mult = 1.0, 1.0, 1.0
        attention_scale = None
        if parametrization == "mup":
            self.width_mult = n_embd / mup_base_width
            self.input_mult = mup_input_alpha
            self.output_mult = mup_output_alpha / self.width_mult
            attention_scale = math.sqrt(mup_base_width / n_head) / (n_embd / n_head)
        padded = -(-vocab_size // vocab_multiple) * vocab_multiple
        self.wte = nn.Embedding(padded, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            Block(n_embd, n_head, dropout, bias, attention_scale) for _ in range(n_layer)
        )
        self.ln_f = LayerNorm(n_embd, bias)
        self.lm_head = nn.Linear(n_embd, padded, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying (Press & Wolf 2017)
        self.init_std = init_std
        self.apply(self._init_weights)
        # GPT-2: residual projections scaled by 1/sqrt(2 · n_layer).
        for module in self.modules():
            if getattr(module, "is_residual_projection", False):
                nn.init.normal_(module.weight, mean=0.0, std=init_std / math.sqrt(2 * n_layer))
        if self.width_mult != 1:  # μP: the hidden matrices' variance / m (scaled, not redrawn)
            with torch.no_grad():
                for p in self.blocks.parameters():
                    if p.dim() >= 2:
                        p.mul_(1 / math.sqrt(self.width_mult))

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=self.init_std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=self.init_std)

    def mup_groups(self) -> list[dict]:
        """The trainable tensors in the groups μP's Adam rules treat alike, each with the factors
        (``scale``) that multiply the optimizer's lr, eps and weight decay in that group: the
        hidden matrices' lr / m; every eps / m, as the guide's reference code has it; and the
        hidden matrices' weight decay · m, so that the shrinking per step that torch's
        decoupled decay applies (lr · weight_decay) stays the base width's. Embeddings keep
        their lr and decay; norms and biases are not decayed."""
        m = self.width_mult
        embeddings = [self.wte.weight, self.wpe.weight]
        hidden, vectors = [], []
        for p in self.parameters():
            if p.requires_grad and not any(p is e for e in embeddings):
                (hidden if p.dim() >= 2 else vectors).append(p)
        return [
            {"params": [e for e in embeddings if e.requires_grad], "scale": {"eps": 1 / m}},
            {"params": hidden, "scale": {"lr": 1 / m, "eps": 1 / m, "weight_decay": m}},
            {"params": vectors, "weight_decay": 0.0, "scale": {"eps": 1 / m}},
        ]

    def num_params(self, non_embedding: bool = True) -> int:
        """nanoGPT's count: position embeddings excluded (token ones count, through the tie)."""
        n = sum(p.numel() for p in self.parameters())
        return n - self.wpe.weight.numel() if non_embedding else n

    def flops_per_token(self) -> int:
        """Training FLOPs (forward + backward) per token at full context, nanoGPT's estimate_mfu
        (PaLM appendix B): 6 per parameter that multiplies (token embeddings count through the
        tied head, positions are only looked up) plus 12·L·H·Q·T for attention's QKᵀ and AV."""
        head_dim = self.n_embd // self.n_head
        attention = 12 * self.n_layer * self.n_head * head_dim * self.block_size
        return 6 * self.num_params() + attention

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        B, T = idx.shape
        if T > self.block_size:
            raise ValueError(f"sequence of {T} tokens is longer than block_size={self.block_size}")
        pos = torch.arange(T, device=idx.device)
        x = self.wte(idx) + self.wpe(pos)  # (B, T, n_embd)
        if self.input_mult != 1:
            x = x * self.input_mult
        x = self.drop(x)
        for block in self.blocks:
            x = block(x)
        x = self.ln_f(x)
        if self.output_mult != 1:
            x = (
                x * self.output_mult
            )  # on the features: the same logits, and x is what a coord check sees
        logits = self.lm_head(x)  # (B, T, padded vocabulary)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(B * T, -1), targets.reshape(B * T))
        if self.lm_head.out_features != self.vocab_size:
            logits = logits[..., : self.vocab_size]  # (B, T, vocab_size): real tokens only, a view
        return logits, loss

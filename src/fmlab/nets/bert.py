"""BERT (Devlin et al. 2019): a bidirectional Transformer encoder with a masked-LM head tied to the
token embedding and a classification head on ``[CLS]`` (or the mean of the real tokens).

As Google's BERT: learned positions, LayerNorm and dropout on the embeddings, GELU MLP, post-LN
blocks, normal(0.02) initialisation, pooler dense + tanh. ``norm="pre"`` moves each LayerNorm in
front of its sub-layer and adds a final one (Xiong et al. 2020), which trains without warm-up.
There are no token-type (segment) embeddings: a pair is told apart by its ``[SEP]`` (RoBERTa
found next-sentence prediction, the segments' reason, unneeded); Google's counts include 2·n_embd
for them, a hundredth of a per cent of bert_tiny's.
"""

import torch
import torch.nn.functional as F
from torch import nn


class SelfAttention(nn.Module):
    """Bidirectional multi-head attention; padded keys are masked out."""

    def __init__(self, n_embd: int, n_head: int, dropout: float) -> None:
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd={n_embd} is not divisible by n_head={n_head}")
        self.n_head, self.dropout = n_head, dropout
        self.qkv = nn.Linear(n_embd, 3 * n_embd)
        self.proj = nn.Linear(n_embd, n_embd)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # each (B, T, C)
        # (B, n_head, T, head_dim)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=keep, dropout_p=self.dropout if self.training else 0.0
        )  # keep: (B, 1, 1, T), True where the key is a real token
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.resid_dropout(self.proj(y))


class EncoderBlock(nn.Module):
    def __init__(self, n_embd: int, n_head: int, dropout: float, norm: str, mlp_ratio: int) -> None:
        super().__init__()
        self.pre = norm == "pre"
        self.attn = SelfAttention(n_embd, n_head, dropout)
        self.ln_1 = nn.LayerNorm(n_embd, eps=1e-12)
        self.mlp = nn.Sequential(
            nn.Linear(n_embd, mlp_ratio * n_embd),
            nn.GELU(),
            nn.Linear(mlp_ratio * n_embd, n_embd),
            nn.Dropout(dropout),
        )
        self.ln_2 = nn.LayerNorm(n_embd, eps=1e-12)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        if self.pre:
            x = x + self.attn(self.ln_1(x), keep)
            return x + self.mlp(self.ln_2(x))
        x = self.ln_1(x + self.attn(x, keep))
        return self.ln_2(x + self.mlp(x))


class MLMHead(nn.Module):
    """dense → GELU → LayerNorm → decoder to the vocabulary, whose weight is the token embedding's
    (Press & Wolf 2017, as BERT) and whose bias is its own."""

    def __init__(self, embedding: nn.Embedding) -> None:
        super().__init__()
        vocab_size, n_embd = embedding.weight.shape
        self.dense = nn.Linear(n_embd, n_embd)
        self.ln = nn.LayerNorm(n_embd, eps=1e-12)
        self.decoder = nn.Linear(n_embd, vocab_size)
        self.decoder.weight = embedding.weight

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.ln(F.gelu(self.dense(h))))


class Bert(nn.Module):
    """``forward(idx) -> (B, num_classes)`` logits, ``encode(idx) -> (B, T, n_embd)``,
    ``mlm_logits(hidden_or_idx, positions) -> (N, vocab_size)`` at the N chosen positions.

    idx (B, T) is padded on the right with ``pad_id``; each row starts with ``[CLS]``. The
    attention mask is ``idx != pad_id``. ``vocab_size``, ``num_classes``, ``pad_id`` and
    ``max_length`` come from the data; an unlabelled corpus gives ``num_classes=0`` (pre-training
    only: a fine-tuning run makes the classifier anew for its classes).
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        pad_id: int,
        max_length: int,
        n_layer: int = 2,
        n_embd: int = 128,
        n_head: int = 2,
        dropout: float = 0.1,
        norm: str = "post",
        pool: str = "cls",
        mlp_ratio: int = 4,
    ) -> None:
        super().__init__()
        if norm not in ("post", "pre"):
            raise ValueError(f"norm={norm!r}: use post (BERT's) or pre (a final LayerNorm too)")
        if pool not in ("cls", "mean"):
            raise ValueError(f"pool={pool!r}: use cls (BERT's pooler) or mean (of the real tokens)")
        self.vocab_size, self.num_classes, self.pad_id = vocab_size, num_classes, pad_id
        self.max_length, self.pool = max_length, pool
        self.tok_emb = nn.Embedding(vocab_size, n_embd)
        self.pos_emb = nn.Embedding(max_length, n_embd)
        self.emb_ln = nn.LayerNorm(n_embd, eps=1e-12)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            EncoderBlock(n_embd, n_head, dropout, norm, mlp_ratio) for _ in range(n_layer)
        )
        # Pre-LN leaves the residual stream un-normalised: one LayerNorm after the last block.
        self.ln_f = nn.LayerNorm(n_embd, eps=1e-12) if norm == "pre" else nn.Identity()
        self.mlm = MLMHead(self.tok_emb)
        self.pooler = nn.Linear(n_embd, n_embd) if pool == "cls" else None
        self.head_drop = nn.Dropout(dropout)
        # Last Linear with num_classes outputs: fmlab.techniques.transfer.head_name finds it as
        # the head.
        self.classifier = nn.Linear(n_embd, num_classes)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        """BERT's: normal(0, 0.02) weights, zero biases, LayerNorm scale 1 and shift 0."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def layer_of(self, name: str) -> int:
        """Depth of parameter ``name``, for layer-wise learning rates in fine-tuning: 0 the
        embeddings, i + 1 block i, n_layer + 1 what sits on top (final norm, heads)."""
        if name.startswith(("tok_emb.", "pos_emb.", "emb_ln.")):
            return 0
        if name.startswith("blocks."):
            return int(name.split(".")[1]) + 1
        return len(self.blocks) + 1

    def encode(self, idx: torch.Tensor) -> torch.Tensor:
        """Hidden states (B, T, n_embd) of every position; a padded one's are not meaningful."""
        T = idx.shape[1]
        if T > self.max_length:
            raise ValueError(
                f"a sequence of {T} tokens is longer than max_length={self.max_length}, the "
                "positions this Bert has embeddings for: cut the text to max_length tokens or "
                "build the net with a larger max_length."
            )
        keep = (idx != self.pad_id)[:, None, None, :]  # (B, 1, 1, T): attend to real keys only
        x = self.tok_emb(idx) + self.pos_emb(torch.arange(T, device=idx.device))  # (B, T, C)
        x = self.drop(self.emb_ln(x))
        for block in self.blocks:
            x = block(x, keep)
        return self.ln_f(x)  # (B, T, n_embd)

    def mlm_logits(self, hidden_or_idx: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits (N, vocab_size) at the N True entries of ``positions`` (B, T), in
        row-major order (that of ``targets[positions]``). The rows are gathered before the head:
        with 15% masked, the head's vocabulary-wide matmul costs a seventh of every position's."""
        hidden = hidden_or_idx
        if not hidden.is_floating_point():
            hidden = self.encode(hidden_or_idx)  # (B, T, n_embd)
        return self.mlm(hidden[positions])  # (N, n_embd) → (N, vocab_size)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        hidden = self.encode(idx)  # (B, T, n_embd)
        if self.pooler is not None:
            pooled = torch.tanh(self.pooler(hidden[:, 0]))  # (B, n_embd): the [CLS] position
        else:
            real = (idx != self.pad_id).unsqueeze(-1)  # (B, T, 1)
            pooled = (hidden * real).sum(1) / real.sum(1).clamp(min=1)  # (B, n_embd)
        return self.classifier(self.head_drop(pooled))  # (B, num_classes)

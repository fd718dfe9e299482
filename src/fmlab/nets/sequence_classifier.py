"""Sequence classification: a recurrent or Transformer encoder over token ids, pooled (last state or
mean over the real tokens) → linear → class logits. Trains through the classification task."""

import torch
from torch import nn

from fmlab.nets.rnn import CELLS


class SequenceClassifier(nn.Module):
    """``forward(idx) -> (B, num_classes)`` logits; idx (B, T) padded with ``pad_id`` on the right.

    ``vocab_size``, ``num_classes``, ``pad_id`` and ``max_length`` come from the data.
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        pad_id: int,
        max_length: int,
        encoder: str = "lstm",
        n_embd: int = 128,
        n_layer: int = 1,
        n_head: int = 4,
        pool: str = "last",
        dropout: float = 0.0,
        bidirectional: bool = False,
    ) -> None:
        super().__init__()
        if encoder not in (*CELLS, "transformer"):
            raise ValueError(f"encoder={encoder!r}: use one of {sorted(CELLS)} or transformer")
        if pool not in ("last", "mean"):
            raise ValueError(f"pool={pool!r}: use last or mean")
        if bidirectional and (encoder == "transformer" or pool == "last"):
            # The backward direction's summary is at the first token, not the last real one.
            raise ValueError("bidirectional=true is for recurrent encoders with pool=mean")
        self.num_classes, self.pad_id, self.encoder_kind, self.pool = (
            num_classes,
            pad_id,
            encoder,
            pool,
        )
        self.embedding = nn.Embedding(vocab_size, n_embd, padding_idx=pad_id)
        if encoder == "transformer":
            self.positions = nn.Embedding(max_length, n_embd)
            layer = nn.TransformerEncoderLayer(
                n_embd, n_head, 4 * n_embd, dropout, activation="gelu", batch_first=True,
                norm_first=True,
            )  # fmt: skip
            self.encoder = nn.TransformerEncoder(layer, n_layer, enable_nested_tensor=False)
        else:
            self.encoder = CELLS[encoder](
                n_embd,
                n_embd,
                n_layer,
                batch_first=True,
                dropout=dropout if n_layer > 1 else 0,
                bidirectional=bidirectional,
            )
        width = 2 * n_embd if bidirectional else n_embd
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, num_classes))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        real = idx != self.pad_id  # (B, T)
        lengths = real.sum(1).clamp(min=1)  # (B,)
        x = self.embedding(idx)  # (B, T, n_embd)
        if self.encoder_kind == "transformer":
            x = x + self.positions(torch.arange(idx.shape[1], device=idx.device))
            out = self.encoder(x, src_key_padding_mask=~real)  # (B, T, n_embd)
        else:
            # (B, T, n_embd), (B, T, 2·n_embd) bidirectional; padding is on the right, after
            # `last`. The backward direction reads pads first: mean pooling over real tokens
            # still differs from unpadded (pads change its state), a known cost of BiLSTM batching.
            out, _ = self.encoder(x)
        if self.pool == "mean":
            pooled = (out * real.unsqueeze(-1)).sum(1) / lengths.unsqueeze(-1)  # (B, width)
        else:
            pooled = out[torch.arange(len(idx), device=idx.device), lengths - 1]  # (B, n_embd)
        return self.head(pooled)  # (B, num_classes)

"""Recurrent language model (Zaremba et al. 2014 style): embedding → n layers of tanh RNN, LSTM or
GRU → dropout → linear, with optional weight tying (Press & Wolf 2017)."""

import torch
import torch.nn.functional as F
from torch import nn

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class RecurrentLM(nn.Module):
    """``forward(idx, targets=None) -> (logits, loss)`` like the GPT, so both train through the
    same task. With ``carry_state`` the last hidden state (detached: truncated BPTT) starts the
    next call whose batch size matches; ``reset_state()`` forgets it. It helps only when
    successive batches continue the same streams."""

    def __init__(
        self,
        vocab_size: int,
        cell: str = "lstm",
        n_embd: int = 256,
        hidden_size: int = 256,
        n_layer: int = 2,
        dropout: float = 0.0,
        tie_weights: bool = False,
        carry_state: bool = False,
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell={cell!r}: use one of {sorted(CELLS)}")
        if tie_weights and n_embd != hidden_size:
            raise ValueError("tie_weights needs n_embd == hidden_size")
        self.vocab_size, self.carry_state = vocab_size, carry_state
        self.embedding = nn.Embedding(vocab_size, n_embd)
        self.rnn = CELLS[cell](
            n_embd, hidden_size, n_layer, batch_first=True, dropout=dropout if n_layer > 1 else 0
        )
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, vocab_size)
        if tie_weights:
            self.head.weight = self.embedding.weight
        self.state = None

    def flops_per_token(self) -> int:
        """Training FLOPs per token, 6 per parameter that multiplies (2 forward, 4 backward; PaLM
        appendix B): every recurrent and output weight meets each token once, in a matmul. The
        embedding is a lookup, so it counts only when tied to the output layer. No attention term:
        a recurrent step's cost does not grow with the context."""
        n = sum(p.numel() for p in self.parameters())  # a tied weight once
        tied = self.head.weight is self.embedding.weight
        return 6 * (n if tied else n - self.embedding.weight.numel())

    def reset_state(self) -> None:
        self.state = None

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        B, T = idx.shape
        state = self.state if self.carry_state and self._fits(B) else None
        out, state = self.rnn(self.drop(self.embedding(idx)), state)  # (B, T, hidden_size)
        if self.carry_state:
            self.state = (
                tuple(s.detach() for s in state) if isinstance(state, tuple) else (state.detach())
            )
        logits = self.head(self.drop(out))  # (B, T, vocab_size)
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.view(B * T, -1), targets.reshape(B * T))

    def _fits(self, batch_size: int) -> bool:
        h = self.state[0] if isinstance(self.state, tuple) else self.state
        return h is not None and h.shape[1] == batch_size

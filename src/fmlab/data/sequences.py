"""BERT's input sequences: ``[CLS] text [SEP]``, or ``[CLS] a [SEP] b [SEP]`` for a pair, cut to
``max_length`` tokens, padded on the right into one (N, max_length) tensor with the real lengths
beside it (batches are cut to their own longest sequence later, see ``TrimmedBatches``)."""

import numpy as np
import torch

from fmlab.errors import FmlabError


def encode_with_specials(
    tokenizer, texts: list[list[str]], max_length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``texts``: one list of N texts, or two (the pairs' first and second texts); the special
    ids are the tokenizer's (``special_ids``)."""
    columns = [tokenizer.encode_batch(column) for column in texts]
    lengths = np.array([[len(ids) for ids in column] for column in columns]).T  # (N, texts)
    keep = _truncate(lengths, max_length - 1 - len(columns), max_length)  # room for the specials
    special = tokenizer.special_ids
    cls_, sep = np.array([special["cls"]]), np.array([special["sep"]])
    rows = []
    for row, kept in enumerate(keep.tolist()):
        pieces = [cls_]
        for column, k in zip(columns, kept, strict=True):
            pieces += [column[row][:k], sep]
        rows.append(np.concatenate(pieces))
    return pad_right(rows, max_length, special["pad"])


def pad_right(rows: list[np.ndarray], max_length: int, pad: int) -> tuple[torch.Tensor, ...]:
    """(ids (N, max_length), lengths (N,)): each row cut to ``max_length``, then ``pad`` after."""
    rows = [r[:max_length] for r in rows]
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)  # (N,)
    ids = torch.full((len(rows), max_length), pad, dtype=torch.long)  # (N, max_length)
    # One scatter: the mask's True cells, row by row, are the concatenated rows' tokens in order.
    real = torch.arange(max_length) < lengths[:, None]  # (N, max_length)
    ids[real] = torch.from_numpy(np.concatenate(rows).astype(np.int64))
    return ids, lengths


def _truncate(lengths: np.ndarray, budget: int, max_length: int) -> np.ndarray:
    """Tokens kept of each text (``lengths`` (N, texts)) so that a row fits ``budget``: a single
    text is cut at its end; of a pair, the longer loses tokens first (BERT's longest-first)."""
    if budget < 1:
        raise FmlabError(
            f"data.max_length={max_length} leaves no room for text beside [CLS] and [SEP]: make "
            "it at least 3 (4 for sentence pairs)."
        )
    if lengths.shape[1] == 1:
        return np.minimum(lengths, budget)
    a, b = lengths[:, 0], lengths[:, 1]
    keep_a = np.minimum(a, np.maximum(budget - b, (budget + 1) // 2))
    return np.stack([keep_a, np.minimum(b, budget - keep_a)], axis=1)

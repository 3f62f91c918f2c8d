"""Sentence vectors from hidden states: mean, cls, or last4 (concatenated mean of the last four layers)."""
from __future__ import annotations

import torch

POOLINGS = ("mean", "cls", "last4")


def _masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1)


def pool(hidden_states: tuple[torch.Tensor, ...], mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """`hidden_states` as returned with output_hidden_states=True (embeddings first, last layer last)."""
    last = hidden_states[-1]
    if pooling == "mean":
        return _masked_mean(last, mask)
    if pooling == "cls":
        return last[:, 0]
    if pooling == "last4":
        if len(hidden_states) < 5:
            from tuneforge.errors import UserError

            raise UserError(f"--pooling last4 needs an encoder with at least 4 layers; this one has "
                            f"{len(hidden_states) - 1}. Use mean or cls.")
        # BERT paper's best feature-based variant: concatenate the last four layers.
        return torch.cat([_masked_mean(h, mask) for h in hidden_states[-4:]], dim=-1)
    raise ValueError(f"unknown pooling {pooling!r}; use one of {POOLINGS}")

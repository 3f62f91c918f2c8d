"""The losses shared by the training objectives (train/objectives.py) and the streaming evaluations
(evaluate/stream.py, evaluate/clm.py), which must not import the training code: classification (with class
weights) and next-token cross-entropy for causal LMs."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from tuneforge.errors import UserError


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, multi_label: bool,
                        weights: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
    logits = logits.float()
    if multi_label:
        loss = F.binary_cross_entropy_with_logits(logits, labels.float(), reduction="none")
        if weights is not None:
            loss = loss * weights
        loss = loss.mean(dim=1)
        return loss.mean() if reduction == "mean" else loss.sum()
    return F.cross_entropy(logits, labels, weight=weights, reduction=reduction)


def balanced_class_weights(counts, spec, names=None) -> torch.Tensor | None:
    """'none' → None, 'balanced' → n / (C * count) per class, or an explicit list: one positive weight per class,
    in label order (`names`, for the error that says which order)."""
    if spec == "none":
        return None
    if isinstance(spec, list):
        order = f" ({', '.join(map(str, names))})" if names is not None else ""
        if len(spec) != len(counts):
            raise UserError(f"train.class_weights has {len(spec)} weights but the data has {len(counts)} classes: "
                            f"give one weight per class in label order{order}, or use 'balanced'.")
        if not all(w > 0 for w in spec):
            raise UserError(f"train.class_weights {spec}: every weight must be above 0 (one per class in label "
                            f"order{order}).")
        return torch.tensor(spec, dtype=torch.float32)
    counts = torch.as_tensor(counts, dtype=torch.float32).clamp(min=1)
    return counts.sum() / (len(counts) * counts)


IGNORE = -100  # label of a token that is not a target (prompt, document start, padding)


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Next-token cross-entropy with Hugging Face-style labels: `labels[:, t]` is token t or -100, and position t
    predicts label t + 1. The labels are shifted (padded with -100), not the logits, so fp32 logits are never
    copied; bf16 logits go to fp32 first, so the loss is not rounded. "mean" is over target tokens (0 when a
    batch has none); "sum" is the total (an evaluation divides by the count it adds up itself)."""
    targets = F.pad(labels, (0, 1), value=IGNORE)[:, 1:].reshape(-1)
    total = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets, ignore_index=IGNORE,
                            reduction="sum")
    if reduction == "sum":
        return total
    return total / (targets != IGNORE).sum().clamp(min=1)

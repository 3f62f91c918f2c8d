"""The classification loss and its class weights: shared by the training objective (train/objectives.py) and the
streaming evaluation (evaluate/stream.py), which must not import the training code."""
from __future__ import annotations

import torch
import torch.nn.functional as F


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


def balanced_class_weights(counts, spec) -> torch.Tensor | None:
    """'none' → None, 'balanced' → n / (C * count) per class, or an explicit list."""
    if spec == "none":
        return None
    if isinstance(spec, list):
        return torch.tensor(spec, dtype=torch.float32)
    counts = torch.as_tensor(counts, dtype=torch.float32).clamp(min=1)
    return counts.sum() / (len(counts) * counts)

"""Objectives by name. Each maps (model, batch) to (loss, logits); the loop knows nothing else about the task."""
from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F

from tuneforge.model.first_token import first_token_only


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


def classification_step(model, batch: dict, multi_label: bool, weights: torch.Tensor | None = None):
    with first_token_only(model):
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    w = weights.to(out.logits.device) if weights is not None else None
    return classification_loss(out.logits, batch["labels"], multi_label, w), out.logits


def mlm_step(model, batch: dict):
    """Masked-LM on a `SparseMLM`-wrapped model: mean cross-entropy over the masked tokens."""
    loss, logits, _ = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"],
                            segment_ids=batch.get("segment_ids"))
    return loss, logits


OBJECTIVES = {"classification": classification_step, "mlm": mlm_step}


def make_objective(name: str, **kwargs):
    return partial(OBJECTIVES[name], **kwargs)


def balanced_class_weights(counts, spec) -> torch.Tensor | None:
    """'none' → None, 'balanced' → n / (C * count) per class, or an explicit list."""
    if spec == "none":
        return None
    if isinstance(spec, list):
        return torch.tensor(spec, dtype=torch.float32)
    counts = torch.as_tensor(counts, dtype=torch.float32).clamp(min=1)
    return counts.sum() / (len(counts) * counts)

"""Objectives by name. Each maps (model, batch) to (loss, logits); the loop knows nothing else about the task."""
from __future__ import annotations

from functools import partial

import torch

from tuneforge.model.first_token import first_token_only
from tuneforge.model.loss import classification_loss


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

"""A sequence classifier's head fitted in closed form: logistic regression (scikit-learn) on the pooled vectors the
head reads (BERT: the pooler's tanh(W·h_CLS + b)), written into the model's `classifier` layer, so the result is a
plain `*ForSequenceClassification` that loads anywhere. Used after contrastive encoder tuning (`train.contrastive`,
SetFit-style): SetFit fits its head the same way."""
from __future__ import annotations

import numpy as np
import torch

from tuneforge.data.encode import Encoded, collate, sorted_batches
from tuneforge.model.first_token import first_token_only


def head_fits(model) -> str | None:
    """None when the head is a single linear layer over the base model's pooler output; else why not."""
    if not isinstance(getattr(model, "classifier", None), torch.nn.Linear):
        return f"{type(model).__name__} has no single linear `classifier` layer"
    if getattr(model.base_model, "pooler", None) is None:
        return f"{type(model).__name__} has no pooler for the head to read"
    return None


def pooled(model, batch: dict) -> torch.Tensor:
    """The vectors the head reads, for a batch of input_ids / attention_mask (the last layer at the first token only
    where the first_token lever is on: the pooler reads that token alone)."""
    with first_token_only(model):
        return model.base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).pooler_output


@torch.no_grad()
def pooled_vectors(model, data: Encoded, pad_id: int, batch_size: int = 64, device="cpu") -> np.ndarray:
    """(N, hidden) float32 pooled vectors of every row of `data`, in row order (eval mode, autocast off: the head
    fitted on them runs in fp32 in final/ and at every prediction)."""
    was_training = model.training
    model.eval()
    out = np.zeros((len(data), model.config.hidden_size), dtype=np.float32)
    try:
        for index in sorted_batches(data.lengths, batch_size, max_tokens=4096):
            batch = {k: v.to(device) for k, v in collate(data, index, pad_id).items() if k != "labels"}
            with torch.autocast(torch.device(device).type, enabled=False):
                out[index] = pooled(model, batch).float().cpu().numpy()
    finally:
        model.train(was_training)
    return out


@torch.no_grad()
def fit_linear_head(model, vectors: np.ndarray, targets: np.ndarray, class_weight: dict | None = None,
                    seed: int = 0) -> None:
    """Fit logistic regression (C = 1, SetFit's default head) on `vectors` → `targets` (label ids) and write it into
    `model.classifier`. Two labels: the weight rows are ∓w/2 (and the biases ∓b/2), so the head's softmax equals the
    regression's sigmoid; more: one row per label (multinomial). `class_weight`: label id → loss weight (None: 1)."""
    from sklearn.linear_model import LogisticRegression

    layer = model.classifier
    clf = LogisticRegression(C=1.0, max_iter=2000, random_state=seed,
                             class_weight=class_weight).fit(vectors, targets)
    weight = np.zeros(tuple(layer.weight.shape), dtype=np.float64)
    bias = np.full(layer.weight.shape[0], -1e4)  # a label absent from train is never predicted
    classes = clf.classes_.astype(int)
    if len(classes) == 2:
        weight[classes[0]], weight[classes[1]] = -clf.coef_[0] / 2, clf.coef_[0] / 2
        bias[classes[0]], bias[classes[1]] = -clf.intercept_[0] / 2, clf.intercept_[0] / 2
    else:
        weight[classes], bias[classes] = clf.coef_, clf.intercept_
    layer.weight.copy_(torch.as_tensor(weight, dtype=layer.weight.dtype))
    if layer.bias is not None:
        layer.bias.copy_(torch.as_tensor(bias, dtype=layer.bias.dtype))

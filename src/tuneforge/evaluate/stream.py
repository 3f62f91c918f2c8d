"""Streaming evaluation: sorted batches, counts accumulated per process and summed across processes."""
from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext

import torch

from tuneforge.data.encode import Encoded, collate, sorted_batches
from tuneforge.evaluate.metrics import Counts, RowOutputs, compute_metrics
from tuneforge.model.first_token import first_token_only
from tuneforge.model.loss import classification_loss

# Padded tokens per evaluation batch at most on CPU (rows × longest row): 128 rows of 128 tokens in fp32 took 0.77 GB
# of activations on multilingual-e5-small (12 layers); 4,096 keeps long texts to 32 rows and leaves short ones at
# 128. A GPU keeps `eval.batch_size` as set.
EVAL_MAX_TOKENS = 4096


@torch.inference_mode()
def evaluate_classifier(model, data: Encoded, names: tuple[str, ...], multi_label: bool, *, batch_size: int = 128,
                        pad_id: int = 0, device=None, rank: int = 0, world: int = 1,
                        reduce: Callable[[torch.Tensor], torch.Tensor] | None = None, autocast=None,
                        details: bool = False):
    """Metrics for `data`. With world > 1, each rank takes every world-th batch and `reduce` sums the counts.

    With `details=True` returns `(metrics, rows)`: `rows` is a `RowOutputs` (single-label; None for
    multi-label) for calibration and the report. The periodic validation in training leaves it off."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()  # dropout off: the numbers must not depend on where in training this is called
    counts = Counts(len(names), multi_label)
    rows = RowOutputs(len(data), len(names)) if details and not multi_label else None
    bound = EVAL_MAX_TOKENS if torch.device(device).type == "cpu" else None
    for index in sorted_batches(data.lengths, batch_size, bound)[rank::world]:
        batch = {k: v.to(device) for k, v in collate(data, index, pad_id).items()}
        with autocast() if autocast else nullcontext(), first_token_only(model):
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss = classification_loss(logits, batch["labels"], multi_label, reduction="sum")
        counts.add(logits, batch["labels"], loss)
        if rows is not None:
            rows.add(index, logits, batch["labels"])
    model.train(was_training)
    if reduce is not None:
        counts.load([reduce(t.to(device)) for t in counts.tensors()])
        if rows is not None:
            rows.load([reduce(t.to(device)) for t in rows.tensors()])
    metrics = compute_metrics(counts, names)
    return (metrics, rows) if details else metrics

"""Held-out masked-LM evaluation: loss, masked-token accuracy and perplexity, from streamed sums."""
from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Callable

import numpy as np
import torch

EVAL_EPOCH = -1  # the held-out masks are drawn once per block and are the same at every evaluation


@torch.inference_mode()
def evaluate_mlm(model, data, *, batch_size: int = 64, device=None, rank: int = 0, world: int = 1,
                 reduce: Callable[[torch.Tensor], torch.Tensor] | None = None, autocast=None) -> dict:
    """`model` is a `SparseMLM`; `data` is a `BlockBatches` over held-out blocks (fixed seed)."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss × n, n, correct
    order = np.arange(len(data))
    for index in [order[i:i + batch_size] for i in range(0, len(order), batch_size)][rank::world]:
        batch = {k: v.to(device) for k, v in data.collate(index, EVAL_EPOCH).items()}
        with autocast() if autocast else nullcontext():
            loss, logits, targets = model(**batch)
        n = targets.numel()
        correct = (logits.argmax(-1) == targets).sum()
        sums += torch.stack([loss.double() * n, torch.tensor(n, dtype=torch.float64, device=device), correct.double()])
    model.train(was_training)
    if reduce is not None:
        sums = reduce(sums)
    loss_sum, n, correct = sums.tolist()
    loss = loss_sum / max(n, 1)
    return {"loss": round(loss, 5), "masked_accuracy": round(correct / max(n, 1), 5),
            "perplexity": round(math.exp(min(loss, 50.0)), 3), "masked_tokens": int(n)}

"""Held-out causal-LM evaluation (SFT answers, CLM pretraining text): next-token loss and perplexity from streamed
sums of the loss and the target count, never the logits; sharded over processes and summed."""
from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext

import torch

from tuneforge.data.encode import sorted_batches
from tuneforge.model.lm_forward import lm_loss_sum

EVAL_EPOCH = -1  # collate's epoch for evaluation (data that draws per epoch draws the same every time)


@torch.inference_mode()
def evaluate_clm(model, data, *, batch_size: int = 16, device=None, rank: int = 0, world: int = 1,
                 reduce: Callable[[torch.Tensor], torch.Tensor] | None = None, autocast=None,
                 label_logits: bool = True, loss_sum: Callable = lm_loss_sum) -> dict:
    """`data` follows the loop's protocol (`lengths`, `collate(index, epoch)` → input_ids, labels and segment_ids or
    attention_mask); `model` may be the prepared (DDP/FSDP-wrapped) one. Returns loss (mean over target tokens),
    perplexity (exp of it) and the token count. `loss_sum(model, batch, label_logits=...)` → (sum, count, logits):
    the causal LM's next-token loss, or an encoder-decoder's (`model.lm_forward.seq2seq_loss_sum`)."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    sums = torch.zeros(2, dtype=torch.float64, device=device)  # loss sum, target tokens
    batches = sorted_batches(data.lengths, batch_size)
    mine = batches[rank::world]
    # Every rank runs the same number of forwards: a wrapped model's forward is a collective (FSDP gathers the
    # weights, DDP syncs buffers), so a rank with one batch fewer repeats one and drops its sums.
    for k in range(-(-len(batches) // world)):
        batch = {key: v.to(device) for key, v in data.collate(mine[k] if k < len(mine) else batches[0],
                                                                 EVAL_EPOCH).items()}
        with autocast() if autocast else nullcontext():
            total, count, _ = loss_sum(model, batch, label_logits=label_logits)
        if k < len(mine):
            sums += torch.stack([total.double(), count.double()])
    model.train(was_training)
    if reduce is not None:
        sums = reduce(sums)
    total, n = sums.tolist()
    loss = total / max(n, 1)
    return {"loss": round(loss, 5), "perplexity": round(math.exp(min(loss, 50.0)), 4), "tokens": int(n)}

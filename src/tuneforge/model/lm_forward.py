"""One causal-LM forward for training and held-out evaluation: the model inputs a batch asks for (document attention
for packed rows, a padding mask otherwise), and the summed next-token loss with its token count.

With `label_logits` (the speed lever of that name) the LM head runs only at the positions whose next token is a
target: an SFT prompt's tokens still pass through every layer, but their vocabulary-sized logits (and softmax, and
the head's gradient there) are never computed. SmolLM2's head is 49,152 × 576, a fifth of the model's FLOPs per
token; on classification-style prompts most tokens are prompt. Exact up to rounding (a test compares both paths).
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F

from tuneforge.model.documents import causal_document_inputs
from tuneforge.model.loss import IGNORE, causal_lm_loss


def lm_inputs(model, batch: dict) -> dict:
    """input_ids plus, with `segment_ids`, the block-diagonal causal mask and restarted positions; else the (B, T)
    `attention_mask`, if any."""
    inputs = {"input_ids": batch["input_ids"], "use_cache": False}  # training and scoring need no KV cache
    if "segment_ids" in batch:
        inputs.update(causal_document_inputs(model, batch["segment_ids"]))
    elif "attention_mask" in batch:
        inputs["attention_mask"] = batch["attention_mask"]
    return inputs


def next_token_targets(labels: torch.Tensor) -> torch.Tensor:
    """(B, T): the label position t is scored against, i.e. labels[:, t + 1] (IGNORE past the end)."""
    return F.pad(labels, (0, 1), value=IGNORE)[:, 1:]


def output_head(model) -> torch.nn.Module:
    while isinstance(getattr(model, "module", None), torch.nn.Module):  # DDP / FSDP keep the model in `.module`
        model = model.module
    head = model.get_output_embeddings()  # a peft model passes this on to its base model
    if head is None:
        raise ValueError(f"{type(model).__name__} has no output embeddings (LM head)")
    return head


@contextmanager
def head_rows(model, keep: torch.Tensor):
    """Within this block the LM head sees only the hidden states at `keep` (B, T bool), so the model's logits come
    out as (keep.sum(), vocab) in row-major order."""

    def select(module, args):
        hidden = args[0]
        return (hidden[keep.to(hidden.device)], *args[1:])

    handle = output_head(model).register_forward_pre_hook(select)
    try:
        yield
    finally:
        handle.remove()


def lm_loss_sum(model, batch: dict, label_logits: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(summed next-token cross-entropy over the targets, number of targets, logits) for one batch."""
    inputs = lm_inputs(model, batch)
    targets = next_token_targets(batch["labels"])
    keep = targets != IGNORE
    count = keep.sum()
    if not label_logits:
        logits = model(**inputs).logits
        return causal_lm_loss(logits, batch["labels"], reduction="sum"), count, logits
    with head_rows(model, keep):
        logits = model(**inputs).logits
    if logits.dim() != 2 or logits.shape[0] != int(count):
        raise RuntimeError(f"label_logits: {type(output_head(model)).__name__} output {tuple(logits.shape)}; this "
                           "model does not call its LM head on the hidden states directly. Turn the lever off "
                           "(--set runtime.levers=all,-label_logits).")
    return F.cross_entropy(logits.float(), targets[keep], reduction="sum"), count, logits


def _unwrapped(model):
    while isinstance(getattr(model, "module", None), torch.nn.Module):  # DDP / FSDP keep the model in `.module`
        model = model.module
    return model


def seq2seq_loss_sum(model, batch: dict, label_smoothing: float = 0.0,
                     label_logits: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(summed token cross-entropy over the labels that are not -100, their count, logits) for an encoder-decoder
    batch (`input_ids`, `attention_mask`, `labels`). Teacher forcing: the decoder reads the labels shifted right by
    the model's own rule (`prepare_decoder_input_ids_from_labels`: T5, BART, MBart and Marian each have theirs).
    `label_smoothing` for training (the held-out loss uses 0). `label_logits`: the LM head runs only at the label
    positions, not at the padding of shorter targets (the same lever as the causal LM's)."""
    labels = batch["labels"]
    decoder_input_ids = _unwrapped(model).prepare_decoder_input_ids_from_labels(labels=labels)
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
              "decoder_input_ids": decoder_input_ids, "use_cache": False}
    keep = labels != IGNORE
    count = keep.sum()
    if label_logits:
        with head_rows(model, keep):
            logits = model(**inputs).logits
        flat, targets = logits.float(), labels[keep]
    else:
        logits = model(**inputs).logits
        flat, targets = logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1)
    total = F.cross_entropy(flat, targets, ignore_index=IGNORE, reduction="sum", label_smoothing=label_smoothing)
    return total, count, logits

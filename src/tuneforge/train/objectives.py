"""Objectives by name. Each maps (model, batch) to (loss, logits); the loop knows nothing else about the task."""
from __future__ import annotations

from functools import partial

import torch

from tuneforge.model.first_token import first_token_only
from tuneforge.model.lm_forward import lm_loss_sum, seq2seq_loss_sum
from tuneforge.model.loss import classification_loss


def classification_step(model, batch: dict, multi_label: bool, weights: torch.Tensor | None = None):
    with first_token_only(model):
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    w = weights.to(out.logits.device) if weights is not None else None
    return classification_loss(out.logits, batch["labels"], multi_label, w), out.logits


def contrastive_step(model, batch: dict):
    """Contrastive encoder tuning on sentence pairs (SetFit's cosine-similarity loss): the mean squared error between
    cos(u, v) of the two sides' pooled vectors (the ones the classifier head reads) and 1 for a pair of the same
    label, 0 for different labels. Returns (loss, cosines)."""
    from tuneforge.model.linear_head import pooled

    u = pooled(model, batch)
    v = pooled(model, {"input_ids": batch["pair_input_ids"], "attention_mask": batch["pair_attention_mask"]})
    cos = torch.nn.functional.cosine_similarity(u.float(), v.float(), dim=-1)
    return torch.nn.functional.mse_loss(cos, batch["same"].to(cos.device)), cos


def mlm_step(model, batch: dict):
    """Masked-LM on a `SparseMLM`-wrapped model: mean cross-entropy over the masked tokens."""
    loss, logits, _ = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"],
                            segment_ids=batch.get("segment_ids"))
    return loss, logits


def causal_lm_step(model, batch: dict, label_logits: bool = False):
    """Causal LM on a `*ForCausalLM` ("clm" pretraining and "sft", one function): mean next-token cross-entropy over
    the labels that are not -100 (labels are the input ids, Hugging Face-style; the loss shifts them; SFT sets the
    prompt's to -100). With `segment_ids` each packed text attends only to itself, with positions restarted
    (`causal_document_inputs`); else `attention_mask` (B, T), if any, is used. `label_logits` (the lever): the LM
    head runs only where a target is (`model.lm_forward`); the logits returned are then those rows only."""
    total, count, logits = lm_loss_sum(model, batch, label_logits)
    return total / count.clamp(min=1), logits


def seq2seq_step(model, batch: dict, label_smoothing: float = 0.0, label_logits: bool = False):
    """Encoder-decoder ("translation", "seq2seq"): mean cross-entropy over the labels that are not -100, with label
    smoothing (0.1 is the usual choice for translation; 0 gives the model's own `labels=` loss). The decoder inputs
    are the labels shifted by the model family's own rule (`prepare_decoder_input_ids_from_labels`: T5, BART, Marian
    start from their decoder start token; MBart wraps the last label, EOS, to the front, which is the same start for
    labels that end in EOS); one forward with the held-out loss (`model.lm_forward.seq2seq_loss_sum`).
    `label_logits` (the lever): the LM head runs only at the label positions, not the target padding. Returns
    (loss, logits)."""
    total, count, logits = seq2seq_loss_sum(model, batch, label_smoothing, label_logits)
    return total / count.clamp(min=1), logits


OBJECTIVES = {"classification": classification_step, "contrastive": contrastive_step, "mlm": mlm_step,
              "clm": causal_lm_step, "sft": causal_lm_step, "translation": seq2seq_step, "seq2seq": seq2seq_step}


def make_objective(name: str, **kwargs):
    return partial(OBJECTIVES[name], **kwargs)

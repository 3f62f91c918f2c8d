"""The last encoder layer computed only where the classification head reads: exact, about 1/7 fewer FLOPs.

A BERT-family sequence classifier reads one position of the last hidden state, the first token
(`[CLS]`/`<s>`: BERT's pooler, RoBERTa's and ELECTRA's heads). Every other position of the last layer is
computed and thrown away. Once `use_first_token(model)` has enabled it (the `first_token` lever; the inference
paths enable it when they load), inside `first_token_only(model)` the last layer computes its query, attention
output, residual and feed-forward for the first token only; keys and values still come from every token.
The logits, the loss and every gradient are the same as the full forward's (up to float rounding; the
tests compare them). The saved model is untouched: this changes how the forward runs, not the weights.

Supported: post-LN BERT, RoBERTa, XLM-R, ELECTRA and CamemBERT layers and the pre-LN RoBERTa-PreLayerNorm
layer (TuneForge's `model.norm=pre`), under their `...ForSequenceClassification` heads. Anything else, and a
layer under gradient checkpointing or a wrapper such as FSDP, runs its full forward unchanged.
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from types import MethodType

import torch
import torch.nn.functional as F

_ACTIVE: ContextVar[bool] = ContextVar("tuneforge_first_token_only", default=False)
_FAMILIES = ("Bert", "Roberta", "XLMRoberta", "Electra", "Camembert", "RobertaPreLayerNorm")
_LAYERS = {f"{f}Layer" for f in _FAMILIES}
_HEADS = {f"{f}ForSequenceClassification" for f in _FAMILIES}


def first_token_layer(model) -> torch.nn.Module | None:
    """The last encoder layer when `model` is a supported classifier whose head reads only the first token."""
    model = getattr(model, "module", model)  # DDP
    if type(model).__name__ not in _HEADS or getattr(model.config, "is_decoder", False):
        return None
    base = getattr(model, model.base_model_prefix, None)
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if not layers:
        return None
    last = layers[-1]
    if type(last).__name__ not in _LAYERS or getattr(last, "add_cross_attention", False):
        return None
    return last


def use_first_token(model) -> bool:
    """Enable the lever on `model` (once): inside `first_token_only(model)` its last layer then computes the first
    position only. False (nothing changed) when the model is not a supported classifier."""
    layer = first_token_layer(model)
    if layer is None:
        return False
    if "forward" not in layer.__dict__:
        layer.forward = MethodType(_forward, layer)
    return True


@contextmanager
def first_token_only(model):
    """Within this block, forwards of a model that `use_first_token` enabled compute the last layer at the first
    position only; any other model runs its full forward."""
    token = _ACTIVE.set(True)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def _forward(self, hidden_states: torch.Tensor, attention_mask=None, *args, **kwargs):
    full = type(self).forward
    # A 4-D mask (sdpa: bool, eager: additive) or none; flash-attention's 2-D mask and flex's BlockMask take the
    # full forward.
    mask_ok = attention_mask is None or (isinstance(attention_mask, torch.Tensor) and attention_mask.dim() == 4)
    if not _ACTIVE.get() or hidden_states.shape[1] == 1 or (self.gradient_checkpointing and self.training) or not mask_ok:
        return full(self, hidden_states, attention_mask, *args, **kwargs)
    attention = self.attention
    sa = attention.self
    batch, length, _ = hidden_states.shape
    pre_norm = getattr(attention, "LayerNorm", None)  # RoBERTa-PreLayerNorm normalizes before attending
    normed = pre_norm(hidden_states) if pre_norm is not None else hidden_states
    heads = (-1, sa.attention_head_size)
    query = sa.query(normed[:, :1]).view(batch, 1, *heads).transpose(1, 2)
    key = sa.key(normed).view(batch, length, *heads).transpose(1, 2)
    value = sa.value(normed).view(batch, length, *heads).transpose(1, 2)
    mask = attention_mask[:, :, :1] if attention_mask is not None else None  # (B, 1, 1 | T, T) → the first row
    # softmax(q·kᵀ·scale + mask)·v for one query: torch's own SDPA, whatever attention function the model uses
    # (they compute the same thing; the layer's query/key/value/output modules are its public parts).
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask,
                                         dropout_p=sa.dropout.p if sa.training else 0.0, scale=sa.scaling)
    attention_output = attention.output(out.transpose(1, 2).reshape(batch, 1, -1), hidden_states[:, :1])
    return self.feed_forward_chunk(attention_output)

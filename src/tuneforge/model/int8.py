"""Eager int8 whose answer for a text does not depend on the other texts in its batch.

PyTorch's dynamic int8 linear (`torch.ao` `quantize_dynamic`, fbgemm) quantizes its input with one scale for the
whole tensor: the range of every token of every text in the batch, padding included. A text's probabilities then
moved with its neighbours: by up to 0.10 on MiniLM-L6 (a text alone vs in a batch of 32 SST-2 sentences).

Here each row (token) gets its own activation scale, so the integer product of a row is the same whatever shares
the call, and the weights stay int8 per output channel:

- `RowInt8Linear` divides each row by its largest |value| (every row then lies in [-1, 1]) and adds one fixed
  probe row holding 1 and -64/63, so fbgemm's own per-tensor range is always exactly [-64/63, 1]: scale 1/63,
  zero point 64 on its 7-bit activation grid, the same for every call. The int32 accumulation is exact and the
  output is rescaled per row (×max|row|) before the bias. Still fbgemm's one fused kernel per linear.
- Attention runs per text on its own unpadded keys (`use_text_attention`): padded keys changed the last bits of
  the attention output (sdpa, ~5e-7), and int8 rounding turns such bits into whole quantization steps.

Together: bit-identical outputs alone and in any batch (max |Δprob| 0, tests/unit/serve/test_batch_independence.py).
"""
from __future__ import annotations

import warnings

import torch

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # torch.ao points at torchao; the built-in fbgemm kernels are what we use
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
    from torch.ao.quantization import per_channel_dynamic_qconfig

PROBE_LOW = -64.0 / 63.0  # with 1.0: fbgemm's 7-bit grid gets scale 1/63 and zero point 64 exactly
TEXT_ATTENTION = "tuneforge_text"  # the attention implementation name registered with transformers
QKV = ("query", "key", "value")  # BERT-family attention: three linears of one input, run as one fused matmul


class RowInt8Linear(DynamicLinear):
    """A dynamic int8 linear (torch.ao's: int8 weights, one scale per output channel; `weight()`, `bias()`) whose
    activations get one scale per row instead of one per call.

    Built from one linear or from several that read the same input (their outputs concatenated). The bias is kept
    in fp32 outside fbgemm's packed weight: it is added after the per-row rescale."""

    def __init__(self, *linears: torch.nn.Linear):
        weight = torch.cat([lin.weight.detach().float() for lin in linears])
        plain = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False)
        plain.weight = torch.nn.Parameter(weight, requires_grad=False)
        plain.qconfig = per_channel_dynamic_qconfig
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # quantized tensor constructors are marked deprecated; fbgemm is not
            super().__init__(weight.shape[1], weight.shape[0], bias_=False, dtype=torch.qint8)
            self._packed_params = DynamicLinear.from_float(plain)._packed_params
        biases = [lin.bias.detach().float() if lin.bias is not None else torch.zeros(lin.out_features)
                  for lin in linears]
        self._bias = torch.cat(biases) if any(lin.bias is not None for lin in linears) else None
        probe = torch.zeros(1, self.in_features)
        probe[0, 0], probe[0, -1] = 1.0, PROBE_LOW
        self._probe = probe

    def _weight_bias(self):
        return self._packed_params._weight_bias()[0], self._bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, self.in_features)
        scale = x2.abs().amax(1, keepdim=True).clamp_min_(1e-30)  # one scale per row
        rows = torch.cat((self._probe, x2 / scale))  # the probe row fixes fbgemm's range at [-64/63, 1]
        # reduce_range: fbgemm's 7-bit activations, as torch.ao's dynamic linear runs them
        y = torch.ops.quantized.linear_dynamic(rows, self._packed_params._packed_params, True)[1:]
        y = torch.addcmul(self._bias, y, scale) if self._bias is not None else y.mul_(scale)
        return y.view(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activations=int8 per row"

    def _get_name(self):
        return "RowInt8Linear"


class _Part(torch.nn.Module):
    """One of the linears fused into a `RowInt8Linear`: query, key or value of an attention block.

    The first part called with an input runs the fused matmul and keeps the result (one tuple, replaced whole, so a
    concurrent caller sees a consistent entry or computes its own); the others slice it."""

    def __init__(self, fused: RowInt8Linear, cache: list, index: int, width: int, last: bool):
        super().__init__()
        self.fused, self._cache = fused, cache
        self._slice, self._last = slice(index * width, (index + 1) * width), last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        entry = self._cache[0]
        if entry is not None and entry[0] is x:  # the entry holds x, so `is` cannot meet a recycled object
            y = entry[1]
        else:
            y = self.fused(x)
            self._cache[0] = (x, y)
        if self._last:
            self._cache[0] = None
        return y[..., self._slice]


def int8_linears(model: torch.nn.Module) -> torch.nn.Module:
    """Every nn.Linear of `model` as a `RowInt8Linear` (in place; CPU), query/key/value fused, and attention per
    text (`use_text_attention`); returns `model`."""
    model = model.float()
    for parent in list(model.modules()):
        children = dict(parent.named_children())
        qkv = [children.get(n) for n in QKV]
        fuse = all(type(c) is torch.nn.Linear for c in qkv) and len({(c.in_features, c.out_features) for c in qkv}) == 1
        if fuse:
            fused, cache = RowInt8Linear(*qkv), [None]
            for i, name in enumerate(QKV):
                setattr(parent, name, _Part(fused, cache, i, qkv[0].out_features, last=name == QKV[-1]))
        for name, child in children.items():
            if type(child) is torch.nn.Linear and not (fuse and name in QKV):
                setattr(parent, name, RowInt8Linear(child))
    use_text_attention(model)
    return model.eval()


def _text_mask(batch_size: int, q_length: int, kv_length: int, q_offset: int = 0, kv_offset: int = 0,
               mask_function=None, attention_mask: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
    """The 2-D padding mask (B, T) itself, all ones when there is none: `_text_attention` cuts each text's keys
    from it. Never 4-D, so `first_token_only` runs these models' last layer in full, through this attention too
    (its pruned path calls torch's SDPA over the padded keys)."""
    if attention_mask is None:
        return torch.ones(batch_size, kv_length, dtype=torch.bool)
    mask = attention_mask[:, -kv_length:].bool()
    if not torch.equal(mask, torch.arange(kv_length) < mask.sum(-1, keepdim=True)):
        raise ValueError("per-text attention needs right padding (ones, then zeros, in each mask row)")
    return mask


def _text_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs):
    """SDPA for each text on its own keys (right padding cut off); query rows past a text's length stay zero.
    Neighbouring texts of the same length (the predictor sorts by length) share one SDPA call."""
    import torch.nn.functional as F

    batch, heads, q_len, _ = query.shape
    k_len = key.shape[2]
    lengths = attention_mask.sum(-1).tolist() if attention_mask is not None else [k_len] * batch
    if batch == 1 and lengths[0] == k_len:
        out = F.scaled_dot_product_attention(query, key, value, dropout_p=dropout, scale=scaling)
        return out.transpose(1, 2).contiguous(), None
    out = query.new_zeros(batch, q_len, heads, query.shape[-1])
    start = 0
    while start < batch:
        n, end = lengths[start], start + 1
        while end < batch and lengths[end] == n:
            end += 1
        rows = n if q_len == k_len else q_len
        o = F.scaled_dot_product_attention(query[start:end, :, :rows], key[start:end, :, :n], value[start:end, :, :n],
                                           dropout_p=dropout, scale=scaling)
        out[start:end, :rows] = o.transpose(1, 2)
        start = end
    return out, None


def use_text_attention(model: torch.nn.Module) -> None:
    """Attention of `model` computed text by text on unpadded keys (registered with transformers once)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(TEXT_ATTENTION, _text_attention)
    AttentionMaskInterface.register(TEXT_ATTENTION, _text_mask)
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and hasattr(config, "_attn_implementation"):
            config._attn_implementation = TEXT_ATTENTION

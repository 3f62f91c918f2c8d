"""Dropout with a cheaper random source on CPU: the same keep-mask distribution, about 4× less time.

PyTorch's CPU dropout draws one float per element through `bernoulli_`: 1.1 ms for one hidden-state tensor
of a 32 × 14-token batch of the default model (0.27 ms here), ~7% of a fine-tuning step over all of them.
`FastDropout` draws 32 random bits per element from numpy's SFC64 generator and keeps an element when its bits clear
p · 2³²: keep probability 1 − p to within 2⁻³² (torch's float draw resolves 2⁻²⁴), kept values scaled by
1 / (1 − p) as in `nn.Dropout`. The generator is seeded from torch's global generator on every call, so
`torch.manual_seed` and a resumed checkpoint (which restores torch's RNG state) reproduce the masks. Tensors
on other devices use PyTorch's own (fused) dropout.

`use_fast_dropout(model)` swaps every `nn.Dropout` in a model for one; dropout has no weights, so the state
dict and the saved model are unchanged. It also moves a model on `sdpa` attention to `ATTENTION` ("tuneforge_sdpa"):
while training on CPU with attention dropout, that computes softmax(QKᵀ · scale + mask) · V itself with the same
cheaper mask on the attention probabilities (what SDPA's CPU math path computes, minus its `bernoulli_` draw and
its fully-masked-row guards, which a padding mask never needs: every row sees its first token). Everywhere else
(evaluation, GPUs, no dropout, causal or grouped-query attention) it calls transformers' own `sdpa` function. The
attention implementation is not written to a saved config.json. Under bf16 autocast its two matmuls and the
softmax run in bf16, as in transformers' eager attention, where SDPA's CPU math path upcasts all three to fp32: in
bf16 part of the gain is those matmuls, and the numerics are eager attention's (SST-2 dev accuracy over three seeds
unchanged: 0.8188 vs 0.8180 before). Measured (python -m benchmarks.probes.probe_levers --mode step, the default model on SST-2
batches): without it a bf16 step costs 1.046× (SDPA's `bernoulli_` is 1.1 ms per layer there), an fp32 step 1.017×.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

ATTENTION = "tuneforge_sdpa"


def keep_mask(shape: torch.Size, p: float, dtype: torch.dtype) -> torch.Tensor:
    """A CPU dropout mask: 1 / (1 − p) where kept (probability 1 − p), 0 where dropped; seeded from torch's RNG."""
    seed = int(torch.randint(0, 2**62, (1,)).item())
    n = shape.numel()
    bits = np.random.Generator(np.random.SFC64(seed)).bit_generator.random_raw((n + 1) // 2)
    draws = bits.view(np.int32)[:n]  # uniform over [-2³¹, 2³¹)
    # One float mask built in numpy: torch's bool kernels are slower.
    mask = np.multiply(draws >= round(p * 2**32) - 2**31, 1.0 / (1.0 - p), dtype=np.float32)
    return torch.from_numpy(mask).view(shape).to(dtype)


class FastDropout(nn.Dropout):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0 or x.device.type != "cpu" or self.p >= 1.0:
            return super().forward(x)
        return x * keep_mask(x.shape, self.p, x.dtype)


def fast_dropout_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                           attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                           **kwargs):
    """transformers' attention-function signature: [batch, heads, positions, head dim] in, [b, q, h, d] out."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    plain = (not module.training or not 0.0 < dropout < 1.0 or query.device.type != "cpu"
             or getattr(module, "num_key_value_groups", 1) > 1 or kwargs.get("position_bias") is not None
             or kwargs.get("softcap") is not None
             or (attention_mask is None and getattr(module, "is_causal", False))
             or (attention_mask is not None and attention_mask.dim() != 4))
    if plain:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    scale = query.shape[-1] ** -0.5 if scaling is None else scaling
    scores = torch.matmul(query, key.transpose(-1, -2)) * scale
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:  # sdpa's mask: True = attend
            attention_mask = torch.zeros(attention_mask.shape, dtype=scores.dtype).masked_fill_(
                ~attention_mask, torch.finfo(scores.dtype).min)
        scores = scores + attention_mask
    probs = torch.softmax(scores, dim=-1)
    probs = probs * keep_mask(probs.shape, dropout, probs.dtype)
    return torch.matmul(probs, value).transpose(1, 2).contiguous(), None


def use_fast_dropout(model: nn.Module, attention: bool = True) -> int:
    """Replace every plain `nn.Dropout` in `model` by a `FastDropout` of the same p, and (`attention`) `sdpa`
    attention by `ATTENTION`; returns how many dropout modules were swapped."""
    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout:
                setattr(parent, name, FastDropout(child.p).train(child.training))
                swapped += 1
    config = getattr(model, "config", None)
    if attention and getattr(config, "_attn_implementation", None) == "sdpa" and hasattr(model, "set_attn_implementation"):
        _register_attention()
        model.set_attn_implementation(ATTENTION)
    return swapped


def _register_attention() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(ATTENTION, fast_dropout_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION, sdpa_mask)  # the same masks sdpa gets

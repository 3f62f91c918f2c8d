"""One model call of the engine: (ids, positions, padding mask, KV store) → next-token logits of the last position.
`pick_forward` takes the fused Llama-family decoder when the model is one and `fast` is on, else the model's own
transformers forward over the same store."""
from __future__ import annotations

import inspect

import torch

from tuneforge.generate.kv import KVStore, hf_cache


class HFForward:
    """The model's own forward (any transformers causal LM whose attention uses the `Cache` API: GPT-2, GPT-Neo,
    Llama, Qwen, ...), with explicit positions and a 2D padding mask, logits for the last position only."""

    name = "transformers"

    def __init__(self, model):
        self.model = model
        params = inspect.signature(model.forward).parameters
        self.keep_last = {"logits_to_keep": 1} if "logits_to_keep" in params else {}

    def __call__(self, ids: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor | None,
                 store: KVStore) -> torch.Tensor:
        out = self.model(input_ids=ids, position_ids=positions, attention_mask=mask, cache=hf_cache(store),
                         use_cache=True, **self.keep_last)
        store.advance(ids.shape[1])
        return out.logits[:, -1]


def layer_count(model) -> int:
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return config.num_hidden_layers


def pick_forward(model, fast: bool = True):
    """`FusedLlama` for Llama-family models when `fast` (and the model qualifies), else `HFForward`."""
    if fast:
        from tuneforge.generate.fused_llama import FusedLlama

        if FusedLlama.supports(model):
            return FusedLlama(model)
    return HFForward(model)

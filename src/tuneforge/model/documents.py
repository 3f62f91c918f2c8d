"""Document attention for packed rows: which tokens may see which, and where positions restart.

A packed row holds several texts (pretraining blocks, packed SFT examples); `segment_ids` (B, T) says which text
each token belongs to. Every packing path in TuneForge turns those ids into model inputs here, and only here:
masked-LM (bidirectional inside each text, `model.mlm.document_inputs`) and causal LMs (causal inside each text,
`causal_document_inputs`), so a text never attends to a neighbour it was packed with.
"""
from __future__ import annotations

import torch


def _unwrapped(model):
    # The objective gets the model as Accelerate prepared it (DDP/FSDP keep the real one in `.module`).
    return getattr(model, "module", model)


def segment_mask(model, segment_ids: torch.Tensor, causal: bool) -> torch.Tensor:
    """(B, 1, T, T) mask: query i sees key j only inside its own segment (and with `causal`, only j <= i).

    Boolean (True = attend) for SDPA; an additive float mask (0 / -1e9) otherwise (eager attention adds the mask
    to the scores). Every row sees at least itself, so no softmax row is empty."""
    same = segment_ids[:, :, None] == segment_ids[:, None, :]
    if causal:
        t = segment_ids.shape[1]
        same = same & torch.ones(t, t, dtype=torch.bool, device=segment_ids.device).tril()
    same = same[:, None]
    if _unwrapped(model).config._attn_implementation != "sdpa":
        return torch.zeros(same.shape, dtype=torch.float32, device=same.device).masked_fill(~same, -1e9)
    return same


def restarted_positions(segment_ids: torch.Tensor) -> torch.Tensor:
    """(B, T) positions counted from 0 at the first token of every segment (a block's first token included)."""
    t = torch.arange(segment_ids.shape[1], device=segment_ids.device).expand_as(segment_ids)
    change = torch.ones_like(segment_ids, dtype=torch.bool)
    change[:, 1:] = segment_ids[:, 1:] != segment_ids[:, :-1]
    start = torch.where(change, t, torch.zeros_like(t)).cummax(dim=1).values
    return t - start


def causal_document_inputs(model, segment_ids: torch.Tensor) -> dict[str, torch.Tensor]:
    """`attention_mask` (B, 1, T, T) block-diagonal causal and `position_ids` (B, T) restarting per text: what a
    causal LM needs so that each packed text is computed exactly as if it stood alone at the start of a row."""
    return {"attention_mask": segment_mask(model, segment_ids, causal=True),
            "position_ids": restarted_positions(segment_ids)}


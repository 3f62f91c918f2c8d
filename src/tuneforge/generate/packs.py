"""When a decoder's cached weight copies (its "pack": fused, transposed matrices) may be reused: one rule for the
causal-LM and the encoder-decoder lean forwards."""
from __future__ import annotations

import torch


def fingerprint(tensors: list[torch.Tensor]) -> list[tuple[int, int]] | None:
    """(storage address, in-place version) of every weight a pack is made from, or None when any of them is
    trainable. A load_state_dict bumps the version and a rebound parameter changes the address, but a fused
    optimizer step (torch's `_fused_adamw_`, the training default) updates the weights without bumping the
    version: a pack of a trainable model can never be proven current, so it is rebuilt for every use (an
    evaluation during training decodes with the weights of that moment). Models loaded for inference are frozen
    (`requires_grad_(False)`) and keep their pack."""
    if any(t.requires_grad for t in tensors):
        return None
    return [(t.data_ptr(), t._version) for t in tensors]  # noqa: SLF001 - torch's in-place counter


def current(pack: dict | None, source: list[tuple[int, int]] | None) -> bool:
    """Whether `pack` was made from exactly these (frozen, unchanged) weights."""
    return pack is not None and source is not None and pack.get("source") == source

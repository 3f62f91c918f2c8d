"""Checkpoint averaging: the elementwise mean of the model weights of the last few checkpoints.

Translation models end a run with the weights still moving around a minimum; averaging the last k checkpoints
(Vaswani et al. 2017 average the last 5) lands nearer its centre and usually adds a fraction of a BLEU point for
free. The weights come from the rolling checkpoints (`train/checkpoint.py`: `checkpoints/step-N/model.safetensors`,
written by Accelerate, complete once `loop_state.json` is there), so the loop must keep at least k of them
(`keep_checkpoints`).
"""
from __future__ import annotations

from pathlib import Path

import torch

from tuneforge.train.checkpoint import list_checkpoints

WEIGHTS_FILE = "model.safetensors"  # Accelerate's name for the first (only) model's weights in a checkpoint


def averaged_checkpoints(run_dir: Path, k: int) -> list[Path]:
    """The newest `k` complete checkpoints that hold model weights, oldest first."""
    found = [p for p in list_checkpoints(run_dir) if (p / WEIGHTS_FILE).is_file()]
    return found[-k:] if k > 0 else []


def average_checkpoints(run_dir: Path, k: int) -> dict[str, torch.Tensor] | None:
    """The mean of the model weights of the newest `k` complete checkpoints in `run_dir/checkpoints`, summed in fp32
    and returned in each tensor's stored dtype (integer buffers are taken from the newest); None when fewer than 2
    exist. Keys are those of the checkpoint files: Accelerate writes one name per tied group (e.g. MBart's
    `model.shared.weight`, not `lm_head.weight`), so load the result with `load_averaged`, which keeps ties."""
    from safetensors.torch import load_file

    paths = averaged_checkpoints(run_dir, k)
    if len(paths) < 2:
        return None
    total: dict[str, torch.Tensor] = {}
    newest: dict[str, torch.Tensor] = {}
    for n, path in enumerate(paths):
        state = load_file(str(path / WEIGHTS_FILE))
        if n and state.keys() != total.keys():
            raise ValueError(f"{path}: its weights have other names than {paths[0]}'s; cannot average them")
        for key, value in state.items():
            if value.is_floating_point():
                total[key] = total[key] + value.float() if n else value.float()
            else:
                total[key] = value
        newest = state
    return {key: (value / len(paths)).to(newest[key].dtype) if newest[key].is_floating_point() else value
            for key, value in total.items()}


def load_averaged(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """Copy averaged weights into `model` in place. A key missing from `weights` must be a tied alias of one that
    is there (same parameter object), so tied weights stay tied; anything else missing or unexpected is an error."""
    result = model.load_state_dict(weights, strict=False)
    if result.unexpected_keys:
        raise ValueError(f"averaged weights name parameters the model lacks: {result.unexpected_keys[:5]}")
    loaded = {id(t) for name, t in _named_tensors(model) if name in weights}
    untied = [name for name, t in _named_tensors(model) if name in result.missing_keys and id(t) not in loaded]
    if untied:
        raise ValueError(f"averaged weights lack {untied[:5]}, which are not tied to any weight they hold")


def _named_tensors(model: torch.nn.Module):
    yield from model.named_parameters(remove_duplicate=False)
    yield from model.named_buffers(remove_duplicate=False)

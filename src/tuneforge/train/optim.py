"""AdamW with decay / no-decay parameter groups, gradient clipping folded into its fused step, and a warm-up/decay
schedule driven by training progress."""
from __future__ import annotations

import torch
from accelerate.utils import DistributedType

# Where every rank holds whole, already-averaged gradients after backward, so a local norm is the global one.
_WHOLE_GRADIENTS = {DistributedType.NO, DistributedType.MULTI_CPU, DistributedType.MULTI_GPU}


def build_optimizer(model, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        # Biases and LayerNorm weights (1-D) are not decayed, as in BERT.
        (no_decay if p.ndim < 2 else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    try:
        # One fused kernel per parameter group (CPU and GPU since torch 2.4): what HF Trainer uses by default.
        return torch.optim.AdamW(groups, lr=lr, fused=True)
    except (RuntimeError, ValueError):  # a device or dtype without a fused kernel
        return torch.optim.AdamW(groups, lr=lr, foreach=True)


def clip_gradients(accelerator, model, optimizer, max_norm: float) -> None:
    """Clip the global gradient norm to `max_norm`, as `clip_grad_norm_`, for the next `optimizer.step()`.

    `clip_grad_norm_` multiplies every gradient by min(1, max_norm / (norm + 1e-6)) in a pass of its own before
    the optimizer reads them again. A fused AdamW divides every gradient by its `grad_scale` inside the step (the
    hook AMP's GradScaler uses), so the coefficient goes there instead: one memory pass fewer over all gradients
    (~2% of a CPU fine-tuning step). Elsewhere (FSDP, DeepSpeed, a GradScaler, a non-fused optimizer) Accelerate
    clips as usual. `finish_step(optimizer)` removes the scale after the step.
    """
    inner = _unwrap(optimizer)
    fold = (isinstance(inner, torch.optim.AdamW) and inner.defaults.get("fused")
            and accelerator.scaler is None and accelerator.distributed_type in _WHOLE_GRADIENTS)
    if not fold:
        accelerator.clip_grad_norm_(model.parameters(), max_norm)
        return
    grads = [p.grad for group in inner.param_groups for p in group["params"] if p.grad is not None]
    norm = torch.nn.utils.get_total_norm(grads, 2.0)
    coef = torch.clamp(max_norm / (norm + 1e-6), max=1.0)
    inner.grad_scale = coef.reciprocal()


def finish_step(optimizer) -> None:
    """Remove a clip coefficient `clip_gradients` folded into the optimizer (it holds for one step only)."""
    inner = _unwrap(optimizer)
    if "grad_scale" in inner.__dict__:
        del inner.grad_scale


def _unwrap(optimizer):
    while hasattr(optimizer, "optimizer") and isinstance(optimizer.optimizer, torch.optim.Optimizer):
        optimizer = optimizer.optimizer  # Accelerate's AcceleratedOptimizer
    return optimizer


class ProgressSchedule:
    """Linear warm-up for `warmup_ratio` of training, then linear decay to 0 at the end of training.

    "Progress" is the fraction of the binding stop rule used so far: max(step / max steps, tokens / max tokens,
    seconds / budget). So a run stopped by its wall-clock budget still ends at learning rate 0 (cramming's
    budget schedule), and a step-limited run gets the usual linear schedule. The loop calls `step(progress)`
    after every optimizer step.
    """

    def __init__(self, optimizer, warmup_ratio: float):
        self.optimizer, self.warmup = optimizer, warmup_ratio
        self.base = [g["lr"] for g in optimizer.param_groups]
        self.progress = 0.0
        self._apply()

    def factor(self) -> float:
        p = self.progress
        if p < self.warmup:
            return p / self.warmup
        return max(0.0, (1.0 - p) / (1.0 - self.warmup))

    def _apply(self) -> None:
        for group, base in zip(self.optimizer.param_groups, self.base):
            group["lr"] = base * self.factor()

    def step(self, progress: float) -> None:
        self.progress = min(1.0, max(0.0, progress))
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {"progress": self.progress, "base": self.base, "warmup": self.warmup}

    def load_state_dict(self, state: dict) -> None:
        self.progress, self.base, self.warmup = state["progress"], state["base"], state["warmup"]
        self._apply()

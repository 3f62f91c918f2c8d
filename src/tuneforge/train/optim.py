"""AdamW with decay / no-decay parameter groups, and a warm-up/decay schedule driven by training progress."""
from __future__ import annotations

import torch


def build_optimizer(model, lr: float, weight_decay: float, table=None, fused: bool = True) -> torch.optim.Optimizer:
    """AdamW; with `table` (`sparse_rows.row_table`) the word embedding trains through it (same result, less work).
    `fused` (the fused_adamw lever): one fused kernel per parameter group; off: PyTorch's default AdamW."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        # Biases and LayerNorm weights (1-D) are not decayed, as in BERT.
        (no_decay if p.ndim < 2 else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    from tuneforge.train.sparse_rows import EmbeddingRowsAdamW, densify_rows

    if table is not None:
        optimizer = EmbeddingRowsAdamW(groups, table, lr=lr)
    elif not fused:
        optimizer = torch.optim.AdamW(groups, lr=lr)
    else:
        try:
            # One fused kernel per parameter group (CPU and GPU since torch 2.4): what HF Trainer uses by default.
            optimizer = torch.optim.AdamW(groups, lr=lr, fused=True)
        except (RuntimeError, ValueError):  # a device or dtype without a fused kernel
            optimizer = torch.optim.AdamW(groups, lr=lr, foreach=True)
    optimizer.register_load_state_dict_pre_hook(densify_rows)  # a table's compact checkpoint resumes anywhere
    return optimizer


def release_optimizer_state(optimizer) -> None:
    """Drop the moments (and the row table's gradient buffer) once training is over: nothing after the loop steps
    again, and for multilingual-e5-small they are ~0.2 GB held through the final evaluation and the save."""
    inner = getattr(optimizer, "optimizer", optimizer)  # Accelerate's AcceleratedOptimizer wraps it
    inner.state.clear()
    if getattr(inner, "buffer", None) is not None:
        inner.buffer = None


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

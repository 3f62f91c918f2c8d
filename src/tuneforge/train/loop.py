"""The one training loop, for every objective, on Accelerate (DDP/FSDP/DeepSpeed come from the launcher).

The loop takes injected callables: `objective(model, batch) -> (loss, logits)` and
`evaluate(model) -> metrics`. Checkpoints hold the full state, so a resumed run ends with the same weights.
"""
from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from tuneforge.data.encode import Encoded, collate, length_grouped_batches
from tuneforge.errors import UserError
from tuneforge.train.checkpoint import load_best, save_best, save_checkpoint
from tuneforge.train.progress import MetricsLog, make_progress


@dataclass
class LoopConfig:
    run_dir: Path
    total_steps: int
    batch_size: int  # global
    grad_accum: int = 1
    max_grad_norm: float | None = 1.0
    eval_every: int = 100
    metric: str = "accuracy"
    patience: int = 0  # evaluations without improvement before stopping; 0 = never
    budget_seconds: float | None = None
    keep_checkpoints: int = 2
    log_every: int = 10
    seed: int = 42
    pad_id: int = 0
    progress: bool = True


@dataclass
class LoopState:
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best: float | None = None
    best_step: int | None = None
    bad_evals: int = 0
    samples: int = 0
    tokens: int = 0
    train_seconds: float = 0.0
    stop_reason: str | None = None
    pending_losses: list = field(default_factory=list)  # losses since the last log line (so resume logs the same)
    history: list = field(default_factory=list)  # evaluation records


def _improved(value: float, best: float | None, metric: str) -> bool:
    if best is None:
        return True
    return value < best if metric == "loss" else value > best


def _micro_batches(index: np.ndarray, rank: int, world: int, accum: int) -> list[np.ndarray]:
    # The global batch is sorted by length; interleaving gives every rank and micro-batch similar lengths.
    mine = index[rank::world]
    return [mine[k::accum] for k in range(accum) if len(mine[k::accum])]


def _train_step(accelerator, model, optimizer, scheduler, objective, data: Encoded, index, cfg: LoopConfig) -> torch.Tensor:
    parts = _micro_batches(index, accelerator.process_index, accelerator.num_processes, cfg.grad_accum)
    total = torch.zeros((), device=accelerator.device)
    for k, part in enumerate(parts):
        batch = {key: v.to(accelerator.device) for key, v in collate(data, part, cfg.pad_id).items()}
        # Scale so the gradient equals the global-batch mean (DDP averages over ranks).
        scale = len(part) * accelerator.num_processes / len(index)
        sync = k == len(parts) - 1
        ctx = accelerator.no_sync(model) if not sync else nullcontext()
        with ctx, accelerator.autocast():
            loss, _ = objective(model, batch)
            accelerator.backward(loss * scale)
        total += loss.detach() * scale
    if cfg.max_grad_norm:
        accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return total


def fit(accelerator, model, optimizer, scheduler, data: Encoded, objective: Callable,
        evaluate: Callable[[torch.nn.Module], dict], cfg: LoopConfig, state: LoopState | None = None) -> LoopState:
    """Train until total steps, early stopping or the time budget; then load the best weights."""
    state = state or LoopState()
    log = MetricsLog(cfg.run_dir / "metrics.jsonl", accelerator.is_main_process)
    lengths = data.lengths
    min_batch = accelerator.num_processes * cfg.grad_accum
    start, window_t, window_samples = time.time() - state.train_seconds, time.time(), 0
    window_loss = [torch.tensor(x, device=accelerator.device) for x in state.pending_losses]
    model.train()
    progress = make_progress(cfg.progress and accelerator.is_main_process)
    with progress:
        task = progress.add_task("train", total=cfg.total_steps, completed=state.step, info="")
        while state.stop_reason is None:
            batches = [b for b in length_grouped_batches(lengths, cfg.batch_size, cfg.seed, state.epoch)
                       if len(b) == cfg.batch_size or (len(lengths) < cfg.batch_size and len(b) >= min_batch)]
            if not batches:
                raise UserError(f"{len(lengths)} training rows cannot fill one batch across {min_batch} "
                                "processes × accumulation steps; add rows or use fewer processes.")
            for index in batches[state.batch_in_epoch:]:
                loss = _train_step(accelerator, model, optimizer, scheduler, objective, data, index, cfg)
                state.step += 1
                state.batch_in_epoch += 1
                state.samples += len(index)
                state.tokens += int(lengths[index].sum())
                window_samples += len(index)
                window_loss.append(loss)
                if state.step % cfg.log_every == 0 or state.step == cfg.total_steps:
                    mean_loss = accelerator.reduce(torch.stack(window_loss).mean(), "mean").item()
                    sps = window_samples / max(1e-9, time.time() - window_t)
                    log.write({"step": state.step, "epoch": round(state.epoch + state.batch_in_epoch / len(batches), 3),
                               "loss": round(mean_loss, 5), "lr": scheduler.get_last_lr()[0], "samples_per_s": round(sps, 2)})
                    progress.update(task, info=f"loss {mean_loss:.4f} · {sps:.0f} samples/s")
                    window_t, window_samples, window_loss = time.time(), 0, []
                progress.update(task, completed=state.step)
                state.train_seconds = time.time() - start
                if cfg.budget_seconds and accelerator.num_processes > 1:
                    # Every rank must take the same stop decision, or their collectives fall out of step.
                    elapsed = torch.tensor(state.train_seconds, device=accelerator.device)
                    state.train_seconds = accelerator.reduce(elapsed, "max").item()
                state.stop_reason = _stop_reason(state, cfg)
                if state.step % cfg.eval_every == 0 or state.stop_reason:
                    state.pending_losses = accelerator.reduce(torch.stack(window_loss), "mean").tolist() if window_loss else []
                    _evaluate_and_checkpoint(accelerator, model, evaluate, cfg, state, log)
                    start = time.time() - state.train_seconds  # evaluation time is not training time
                if state.stop_reason:
                    break
            else:
                state.epoch += 1
                state.batch_in_epoch = 0
    if state.best_step is not None:
        load_best(accelerator.unwrap_model(model), cfg.run_dir, state.best_step)
    return state


def _stop_reason(state: LoopState, cfg: LoopConfig) -> str | None:
    if state.step >= cfg.total_steps:
        return "max_steps"
    if cfg.budget_seconds and state.train_seconds >= cfg.budget_seconds:
        return "budget"
    return None


def _evaluate_and_checkpoint(accelerator, model, evaluate, cfg: LoopConfig, state: LoopState, log: MetricsLog) -> None:
    metrics = evaluate(model)
    value = metrics[cfg.metric]
    if _improved(value, state.best, cfg.metric):
        state.best, state.best_step, state.bad_evals = value, state.step, 0
        if accelerator.is_main_process:
            save_best(accelerator.unwrap_model(model), cfg.run_dir, state.step)
    else:
        state.bad_evals += 1
        if cfg.patience and state.bad_evals >= cfg.patience and not state.stop_reason:
            state.stop_reason = "early_stopping"
    record = {"step": state.step, "split": "validation", **{k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}}
    state.history.append(record)
    log.write(record)
    save_checkpoint(accelerator, cfg.run_dir, state.step, asdict(state), cfg.keep_checkpoints)

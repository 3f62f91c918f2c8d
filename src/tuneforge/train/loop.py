"""The one training loop, for every objective, on Accelerate (DDP/FSDP/DeepSpeed come from the launcher).

The loop takes injected pieces: `data` (`lengths`, `batches(batch_size, seed, epoch)`, `collate(index, epoch)`),
`objective(model, batch) -> (loss, logits)` and `evaluate(model) -> metrics`. Checkpoints hold the full state,
so a resumed run ends with the same weights.
"""
from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from tuneforge.errors import UserError
from tuneforge.train.checkpoint import load_best, load_best_sharded, save_best, save_checkpoint
from tuneforge.train.progress import MetricsLog, make_progress
from tuneforge.train.runtime import HeapTrimmer, rss_mb
from tuneforge.train.sparse_rows import clip_gradients, flush


@dataclass
class LoopConfig:
    run_dir: Path
    total_steps: int | None  # None: bounded by max_tokens or the budget instead
    batch_size: int  # global
    grad_accum: int = 1
    max_grad_norm: float | None = 1.0
    eval_every: int = 100
    metric: str = "accuracy"
    patience: int = 0  # evaluations without improvement before stopping; 0 = never
    keep_last: bool = False  # the weights kept are the newest evaluated ones, not the best-scoring (SetFit-style runs)
    budget_seconds: float | None = None
    max_tokens: int | None = None
    keep_checkpoints: int = 2
    log_every: int = 10
    seed: int = 42
    progress: bool = True
    flops_per_token: float | None = None  # training FLOPs per token, for the MFU column
    peak_flops: float | None = None  # the machine's measured matmul peak (FLOP/s)
    trim_memory: bool = False  # hand freed heap pages back after each evaluation and when RSS grows (HeapTrimmer)


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


def _accumulation(data, index: np.ndarray, cfg: LoopConfig, world: int) -> int:
    """Micro-batches for this batch: `grad_accum`, or more when the data bounds the padded tokens of one forward
    (`data.micro_tokens`) and this rank's rows × the batch's longest row would exceed it. The micro-batches'
    gradients, weighted as `_loss_weights` weighs them (rows, or the data's `loss_weight`), sum to the whole
    batch's, so only the activation memory changes."""
    budget = getattr(data, "micro_tokens", None)
    if not budget:
        return cfg.grad_accum
    rows = -(-len(index) // world)  # this rank's share
    per_forward = max(1, budget // max(1, int(data.lengths[index].max())))
    return max(cfg.grad_accum, -(-rows // per_forward))


def _loss_weights(accelerator, data, batches: list[dict], rows: list[int], global_rows: int) -> list[float]:
    """Each micro-batch's share of the global batch, so the accumulated gradient is the global-batch mean (DDP then
    averages over ranks, hence the factor `num_processes`). By rows, or, when `data` has `loss_weight(batch)` (a
    token-level loss such as SFT's), by the targets each micro-batch holds across all ranks: accumulation then gives
    the same gradient as one large batch."""
    world = accelerator.num_processes
    weigh = getattr(data, "loss_weight", None)
    if weigh is None:
        return [n * world / global_rows for n in rows]
    counts = [float(weigh(b)) for b in batches]
    total = torch.tensor([sum(counts)], device=accelerator.device)
    if world > 1:
        total = accelerator.reduce(total, reduction="sum")
    return [c * world / max(1.0, float(total.item())) for c in counts]


def _train_step(accelerator, model, optimizer, objective, data, index, epoch: int, cfg: LoopConfig) -> torch.Tensor:
    accum = _accumulation(data, index, cfg, accelerator.num_processes)
    parts = _micro_batches(index, accelerator.process_index, accelerator.num_processes, accum)
    batches = [data.collate(part, epoch) for part in parts]
    scales = _loss_weights(accelerator, data, batches, [len(p) for p in parts], len(index))
    total = torch.zeros((), device=accelerator.device)
    for k, (batch, scale) in enumerate(zip(batches, scales)):
        batch = {key: v.to(accelerator.device) for key, v in batch.items()}
        sync = k == len(parts) - 1
        ctx = accelerator.no_sync(model) if not sync else nullcontext()
        with ctx, accelerator.autocast():
            loss, _ = objective(model, batch)
            accelerator.backward(loss * scale)
        total += loss.detach() * scale
    if cfg.max_grad_norm:
        clip_gradients(accelerator, model, optimizer, cfg.max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return total


def fit(accelerator, model, optimizer, scheduler, data, objective: Callable,
        evaluate: Callable[[torch.nn.Module], dict], cfg: LoopConfig, state: LoopState | None = None,
        log: MetricsLog | None = None) -> LoopState:
    """Train until max steps/tokens, early stopping or the time budget; then load the best weights. `log`: the
    run's metrics.jsonl (the session's, which also feeds its trackers); default: the file in `cfg.run_dir`."""
    state = state or LoopState()
    log = log or MetricsLog(cfg.run_dir / "metrics.jsonl", accelerator.is_main_process)
    lengths = data.lengths
    min_batch = accelerator.num_processes * cfg.grad_accum
    start = time.time() - state.train_seconds
    window = {"t": time.time(), "samples": 0, "tokens": 0,
              "loss": [torch.tensor(x, device=accelerator.device) for x in state.pending_losses]}
    model.train()
    trimmer = HeapTrimmer(cfg.trim_memory)
    progress = make_progress(cfg.progress and accelerator.is_main_process)
    with progress:
        task = progress.add_task("train", total=cfg.total_steps, completed=state.step, info="")
        while state.stop_reason is None:
            batches = [b for b in data.batches(cfg.batch_size, cfg.seed, state.epoch) if _full(b, data, cfg, min_batch)]
            if not batches:
                raise UserError(f"{len(lengths)} training rows cannot fill one batch across {min_batch} "
                                "processes × accumulation steps; add rows or use fewer processes.")
            for index in batches[state.batch_in_epoch:]:
                loss = _train_step(accelerator, model, optimizer, objective, data, index, state.epoch, cfg)
                tokens = int(lengths[index].sum())
                state.step += 1
                state.batch_in_epoch += 1
                state.samples += len(index)
                state.tokens += tokens
                window["samples"] += len(index)
                window["tokens"] += tokens
                window["loss"].append(loss)
                _update_clock(accelerator, state, start, cfg)
                scheduler.step(_progress(state, cfg))
                if state.step % cfg.log_every == 0 or state.step == cfg.total_steps:
                    _log_train(accelerator, log, progress, task, state, window, len(batches), scheduler, cfg)
                progress.update(task, completed=state.step)
                trimmer.after_step()
                state.stop_reason = _stop_reason(state, cfg)
                if state.step % cfg.eval_every == 0 or state.stop_reason:
                    state.pending_losses = accelerator.reduce(torch.stack(window["loss"]), "mean").tolist() if window["loss"] else []
                    paused = time.time()
                    flush(optimizer)  # weights the optimizer holds apart land before they are read or saved
                    _evaluate_and_checkpoint(accelerator, model, evaluate, cfg, state, log)
                    trimmer.trim()  # evaluation's blocks (other shapes) do not stay resident
                    window["t"] += time.time() - paused  # evaluation time is not training time...
                    start = time.time() - state.train_seconds  # ...for the throughput nor the budget
                if state.stop_reason:
                    break
            else:
                state.epoch += 1
                state.batch_in_epoch = 0
    flush(optimizer)  # a no-op after the last evaluation's flush; kept so fit() never returns stale weights
    if state.best_step is not None and _sharded(accelerator):
        load_best_sharded(accelerator, model, cfg.run_dir, state.best_step)
    elif state.best_step is not None:
        load_best(accelerator.unwrap_model(model), cfg.run_dir, state.best_step)
    return state


def _full(index: np.ndarray, data, cfg: LoopConfig, min_batch: int) -> bool:
    """Whether a batch is trained on: a whole batch of `batch_size` rows (a short last one is dropped, so every step
    weighs the same), or any batch that every process × micro-batch gets rows of when the data batches by tokens
    (`data.token_batches`: rows per batch vary by design) or is smaller than one batch."""
    if getattr(data, "token_batches", False):
        return len(index) >= min_batch
    return len(index) == cfg.batch_size or (len(data.lengths) < cfg.batch_size and len(index) >= min_batch)


def _sharded(accelerator) -> bool:
    """FSDP: no process holds the whole model, so the best weights are gathered and spread by every rank."""
    from accelerate.utils import DistributedType

    return accelerator.distributed_type == DistributedType.FSDP


def _update_clock(accelerator, state: LoopState, start: float, cfg: LoopConfig) -> None:
    state.train_seconds = time.time() - start
    if cfg.budget_seconds and accelerator.num_processes > 1:
        # Every rank must take the same stop decision and learning rate, or they fall out of step.
        elapsed = torch.tensor(state.train_seconds, device=accelerator.device)
        state.train_seconds = accelerator.reduce(elapsed, "max").item()


def _progress(state: LoopState, cfg: LoopConfig) -> float:
    """Fraction of training done by the binding stop rule (drives the learning-rate schedule)."""
    parts = [0.0]
    if cfg.total_steps:
        parts.append(state.step / cfg.total_steps)
    if cfg.max_tokens:
        parts.append(state.tokens / cfg.max_tokens)
    if cfg.budget_seconds:
        parts.append(state.train_seconds / cfg.budget_seconds)
    return max(parts)


def _log_train(accelerator, log: MetricsLog, progress, task, state: LoopState, window: dict, n_batches: int,
               scheduler, cfg: LoopConfig) -> None:
    mean_loss = accelerator.reduce(torch.stack(window["loss"]).mean(), "mean").item()
    seconds = max(1e-9, time.time() - window["t"])
    sps, tps = window["samples"] / seconds, window["tokens"] / seconds
    record = {"step": state.step, "epoch": round(state.epoch + state.batch_in_epoch / n_batches, 3),
              "loss": round(mean_loss, 5), "lr": scheduler.get_last_lr()[0], "samples_per_s": round(sps, 2),
              "tokens_per_s": round(tps, 1), "tokens": state.tokens, "rss_mb": rss_mb()}
    info = f"loss {mean_loss:.4f} · {sps:.0f} samples/s"
    if cfg.flops_per_token and cfg.peak_flops:
        record["mfu"] = round(tps * cfg.flops_per_token / (cfg.peak_flops * accelerator.num_processes), 4)
        info = f"loss {mean_loss:.4f} · {tps:.0f} tok/s · MFU {record['mfu']:.0%}"
    log.write(record)
    progress.update(task, info=info)
    window.update(t=time.time(), samples=0, tokens=0, loss=[])


def _stop_reason(state: LoopState, cfg: LoopConfig) -> str | None:
    if cfg.total_steps and state.step >= cfg.total_steps:
        return "max_steps"
    if cfg.max_tokens and state.tokens >= cfg.max_tokens:
        return "max_tokens"
    if cfg.budget_seconds and state.train_seconds >= cfg.budget_seconds:
        return "budget"
    return None


def _evaluate_and_checkpoint(accelerator, model, evaluate, cfg: LoopConfig, state: LoopState, log: MetricsLog) -> None:
    metrics = evaluate(model)
    value = metrics[cfg.metric]
    if cfg.keep_last or _improved(value, state.best, cfg.metric):
        state.best, state.best_step, state.bad_evals = value, state.step, 0
        full = accelerator.get_state_dict(model) if _sharded(accelerator) else None  # every rank: a collective
        if accelerator.is_main_process:
            save_best(full if full is not None else accelerator.unwrap_model(model), cfg.run_dir, state.step)
    else:
        state.bad_evals += 1
        if cfg.patience and state.bad_evals >= cfg.patience and not state.stop_reason:
            state.stop_reason = "early_stopping"
    record = {"step": state.step, "split": "validation", **{k: v for k, v in metrics.items() if not isinstance(v, (dict, list))},
              "train_seconds": round(state.train_seconds, 2)}  # for curves against training wall time
    state.history.append(record)
    log.write(record)
    save_checkpoint(accelerator, cfg.run_dir, state.step, asdict(state), cfg.keep_checkpoints)

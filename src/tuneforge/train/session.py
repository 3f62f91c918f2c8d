"""One training run in one run folder, for every objective: open or resume the folder, resolve the config, build
optimizer and schedule, prepare with Accelerate, run the one loop, and write summary.json and final/.

A recipe picks what differs (data, model, objective, evaluation, report); this owns what is the same:

    session = Session(cfg, resume, overwrite)          # accelerator, run folder (refuses to clobber)
    cfg = session.resolve(cfg, why)                    # precision pinned, "auto:" lines, config.yaml
    model = session.apply_levers(model)                # the model-side speed levers
    result = session.train(model, data, objective, evaluate, metric=..., patience=...)
    session.save_final(model, tokenizer, manifest)     # final/ with metrics.jsonl and training_config.yaml
    session.finish(summary)                            # summary.json; every process ends here
"""
from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from tuneforge.config import to_yaml
from tuneforge.data.encode import LengthGroupedBatches, micro_batch_tokens
from tuneforge.data.pairs import PairBatches
from tuneforge.errors import UserError
from tuneforge.model.artifact import atomic_write_text, claim_folder, save_model_folder
from tuneforge.model.dropout import use_fast_dropout
from tuneforge.model.first_token import use_first_token
from tuneforge.model.manifest import Manifest, RunSummary
from tuneforge.train.checkpoint import latest_checkpoint, load_checkpoint
from tuneforge.train.loop import LoopConfig, LoopState, fit
from tuneforge.train.optim import ProgressSchedule, build_optimizer, release_optimizer_state
from tuneforge.train.progress import MetricsLog
from tuneforge.train.runtime import (compute_dtype, make_accelerator, measure_matmul_peak, pin_precision,
                                    trim_freed_memory)
from tuneforge.train.sparse_rows import row_table
from tuneforge.train.tracking import Tracking

RUN_MARKERS = ("config.yaml", "checkpoints", "final")


def open_run_folder(run_dir: Path, resume: bool, overwrite: bool) -> None:
    """Claim `run_dir` for this run: never a folder that is not a run, a run that holds work only with --resume
    (continue) or --overwrite (replace), and a finished run is not resumed."""
    ours = any((run_dir / n).exists() for n in RUN_MARKERS)
    busy = any((run_dir / n).exists() for n in ("checkpoints", "final"))
    claim_folder(run_dir, "run", ours, busy, resume, overwrite)
    if resume and not latest_checkpoint(run_dir) and (run_dir / "final").exists():
        raise UserError(f"{run_dir}: the run already finished (final/ exists); nothing to resume.")
    run_dir.mkdir(parents=True, exist_ok=True)


def apply_levers(model, runtime):
    """The model-side levers that `runtime.levers` turns on: cheap dropout masks (and attention dropout), the
    first-token layer. Returns the model (changed in place)."""
    if runtime.lever("fast_dropout"):
        use_fast_dropout(model, attention=runtime.lever("fast_attention"))
    if runtime.lever("first_token"):
        use_first_token(model)
    return model


@dataclass
class TrainResult:
    """What the loop ended with, and the model as Accelerate prepared it (unwrap it to save or evaluate)."""
    state: LoopState
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer  # its moments released (release_optimizer_state): nothing steps after the loop
    initial_metrics: dict | None = None
    peak_flops: float | None = None


class Session:
    def __init__(self, cfg, resume: bool = False, overwrite: bool = False):
        self.cfg, self.resume = cfg, resume
        self.accelerator = make_accelerator(cfg.runtime)
        self.run_dir = Path(cfg.output)
        self.tracking = Tracking(cfg.tracking, self.run_dir, self.is_main, self.say)  # checks the packages first
        if self.is_main:
            open_run_folder(self.run_dir, resume, overwrite)
        self.accelerator.wait_for_everyone()
        self.log = MetricsLog(self.run_dir / "metrics.jsonl", self.is_main, sink=self.tracking.record)

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    def say(self, msg: str) -> None:
        if self.is_main:
            print(msg, file=sys.stderr, flush=True)

    def lever(self, name: str) -> bool:
        return self.cfg.runtime.lever(name)

    def write(self, name: str, text: str) -> None:
        """A file in the run folder, written atomically by the main process."""
        if self.is_main:
            atomic_write_text(self.run_dir / name, text)

    def resolve(self, cfg, why: dict[str, str] | None = None):
        """The run's final config: precision pinned to what runs; every auto choice printed; config.yaml written;
        the trackers (`tracking.report_to`) opened with it."""
        cfg, chosen = pin_precision(cfg, self.accelerator)
        for key, reason in {**(why or {}), **chosen}.items():
            self.say(f"auto: {key} = {reason}")
        self.cfg = cfg
        self.write("config.yaml", to_yaml(cfg))
        self.tracking.start(cfg, self.accelerator, self.resume)
        return cfg

    def apply_levers(self, model):
        return apply_levers(model, self.cfg.runtime)

    def text_batches(self, encoded, pad_id: int, class_weights=None, layers: int | None = None,
                     pairs=None) -> LengthGroupedBatches:
        """Training batches of encoded texts, padded per batch; length-grouped with the length_grouping lever; on CPU
        with split_long_batches, a batch over `micro_batch_tokens(layers)` padded tokens (1,024 for an encoder of
        up to 6 layers, fewer for a deeper one) runs as micro-batches. `pairs` ((P, 3) rows of
        `data.pairs.sentence_pairs`): batches of those sentence pairs instead of rows (train.contrastive)."""
        split = self.lever("split_long_batches") and self.accelerator.device.type == "cpu"
        options = {"grouped": self.lever("length_grouping"),
                   "micro_tokens": micro_batch_tokens(layers) if split else None}
        if pairs is not None:
            return PairBatches(encoded, pairs, pad_id, **options)
        return LengthGroupedBatches(encoded, pad_id, class_weights=class_weights, **options)

    def eval_context(self) -> dict:
        """The keyword arguments every streaming evaluation takes: where to run and how to sum over processes."""
        a = self.accelerator
        return {"device": a.device, "rank": a.process_index, "world": a.num_processes,
                "reduce": lambda t: a.reduce(t, "sum"), "autocast": a.autocast}

    def train(self, model, data, objective: Callable, evaluate: Callable, *, metric: str, patience: int = 0,
              total_steps: int | None, embedding_rows=None, flops_per_token: float | None = None,
              evaluate_first: bool = False, keep_last: bool = False) -> TrainResult:
        """Optimizer + schedule + Accelerate, then the loop, resumed from the newest checkpoint with --resume.

        `embedding_rows`: the token ids the training data uses (the embedding_rows lever trains only those rows;
        CPU, one process). `flops_per_token`: training FLOPs actually executed per token, for the MFU column (the
        matmul peak is measured here). `evaluate_first`: a fresh run evaluates once before step 1 (logged as step 0).
        `keep_last`: end with the newest evaluated weights instead of the best-scoring ones.
        """
        a, t = self.accelerator, self.cfg.train
        table = None
        # The row table's optimizer is fused AdamW by construction, so fused_adamw off means no table either.
        if embedding_rows is not None and self.lever("embedding_rows") and self.lever("fused_adamw") \
                and a.device.type == "cpu" and a.num_processes == 1:
            table = row_table(model, embedding_rows)
        optimizer = build_optimizer(model, t.learning_rate, t.weight_decay, table, fused=self.lever("fused_adamw"))
        scheduler = ProgressSchedule(optimizer, t.warmup_ratio)
        model, optimizer = a.prepare(model, optimizer)
        a.register_for_checkpointing(scheduler)
        state = self._resume_state() if self.resume else LoopState()
        self.log.truncate_after(state.step)
        initial = None
        if evaluate_first and state.step == 0:
            initial = evaluate(model)
            self.log.write({"step": 0, "split": "validation", **initial})
        peak = measure_matmul_peak(a.device, compute_dtype(a)) if flops_per_token else None
        try:
            state = fit(a, model, optimizer, scheduler, data, objective, evaluate,
                        self._loop_config(metric, patience, total_steps, flops_per_token, peak, keep_last), state,
                        self.log)
        finally:
            if table is not None:
                table.release()
        release_optimizer_state(optimizer)
        if self.lever("trim_memory"):
            trim_freed_memory()  # the moments and the last steps' blocks: the final evaluation starts lower
        if peak:  # a neighbour's load can depress one measurement; the better of start and end is the peak
            peak = max(peak, measure_matmul_peak(a.device, compute_dtype(a)))
        return TrainResult(state, model, optimizer, initial, peak)

    def _loop_config(self, metric: str, patience: int, steps: int | None, flops: float | None,
                     peak: float | None, keep_last: bool = False) -> LoopConfig:
        t, rt = self.cfg.train, self.cfg.runtime
        return LoopConfig(run_dir=self.run_dir, total_steps=steps, batch_size=t.batch_size,
                          grad_accum=t.grad_accum_steps, max_grad_norm=t.max_grad_norm,
                          eval_every=self.cfg.eval.every_steps, metric=metric, patience=patience, keep_last=keep_last,
                          budget_seconds=t.budget_minutes * 60 if t.budget_minutes else None,
                          max_tokens=t.max_tokens, keep_checkpoints=rt.keep_checkpoints, log_every=rt.log_every_steps,
                          seed=t.seed, progress=rt.progress, flops_per_token=flops, peak_flops=peak,
                          trim_memory=self.lever("trim_memory"))

    def _resume_state(self) -> LoopState:
        ckpt = latest_checkpoint(self.run_dir)
        if not ckpt:
            self.say(f"no complete checkpoint in {self.run_dir}; starting from the beginning")
            return LoopState()
        state = LoopState(**load_checkpoint(self.accelerator, ckpt))
        self.say(f"resuming from {ckpt} (step {state.step})")
        return state

    def summary(self, task: str, result: TrainResult, metrics: dict, **fields) -> RunSummary:
        """The run's typed summary: the loop's counters and throughput, plus the task's `fields`."""
        s, n = result.state, self.accelerator.num_processes
        seconds = max(s.train_seconds, 1e-9)
        tps = s.tokens / seconds
        flops = fields.pop("flops_per_token", None)
        mfu = round(tps * flops / (result.peak_flops * n), 4) if flops and result.peak_flops else None
        return RunSummary(task=task, run_dir=str(self.run_dir), final=str(self.run_dir / "final"), metrics=metrics,
                          steps=s.step, best_step=s.best_step, stop_reason=s.stop_reason,
                          train_seconds=round(s.train_seconds, 2), samples_per_s=round(s.samples / seconds, 2),
                          tokens=s.tokens, tokens_per_s=round(tps, 1), mfu=mfu, peak_flops=result.peak_flops,
                          flops_per_token=flops, initial_metrics=result.initial_metrics, **fields)

    def config_yaml(self) -> str:
        return to_yaml(self.cfg)

    def manifest(self, task: str, **fields) -> Manifest:
        """The final/ manifest: the task, the config's hash, and the task's `fields`."""
        return Manifest(task=task, config_sha256=hashlib.sha256(self.config_yaml().encode()).hexdigest(), **fields)

    def save_final(self, model, tokenizer, manifest: Manifest, extra_files: dict[str, str] | None = None) -> None:
        """final/ (main process): the model, its tokenizer, the manifest, the run's metrics.jsonl and config."""
        if not self.is_main:
            return
        log = self.log.path.read_text(encoding="utf-8") if self.log.path.exists() else ""
        files = {"metrics.jsonl": log, "training_config.yaml": self.config_yaml(), **(extra_files or {})}
        save_model_folder(model, tokenizer, self.run_dir / "final", manifest, extra_files=files)

    def history(self) -> list[dict]:
        return self.log.read()

    def finish(self, summary: RunSummary) -> RunSummary:
        """summary.json and the trackers' last records and artifacts, then every process waits for the others and
        Accelerate ends the run."""
        self.write("summary.json", summary.to_json())
        self.tracking.finish(summary)
        self.accelerator.wait_for_everyone()
        self.accelerator.end_training()
        return summary

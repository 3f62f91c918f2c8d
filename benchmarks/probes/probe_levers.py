"""What each fine-tuning speed lever is worth: the same `tuneforge finetune` with every lever on, and with one lever
switched off at a time (issue 4, "write each lever and its measured effect").

Usage (from the repository root):
    python -m benchmarks.probes.probe_levers --mode step     # in-process, interleaved steps (~5 min)
    python -m benchmarks.probes.probe_levers --mode run      # whole runs: 4,000 SST-2 rows, 3 rounds (~20 min)
    python -m benchmarks.probes.probe_levers --mode cost     # fixed + per-token step cost vs the stock step (~2 min)
    python -m benchmarks.probes.probe_levers --mode run --train-rows 1000 --rounds 1 --variants all,no_reuse_memory

Two modes, because this shared machine moves whole runs by ±8% between neighbours, more than most levers:
  step  One process holds one model + optimizer per variant (the same pretrained weights) and times them on the
        same SST-2 batches, interleaved: every round each variant runs the same `--steps-per-round` batches, the
        order rotated, and the lever's effect is the median over rounds of (variant seconds ÷ `all` seconds) —
        neighbours' noise hits both sides of each ratio. Levers that act per process (`no_reuse_memory`) or on the
        batch order (`no_length_grouping`) cannot be interleaved and are left to `run`.
  run   Whole `tuneforge finetune` runs, below. Ground truth for the big levers, too coarse for ~1% ones.
  cost  Where a step's time goes: TuneForge's step ("all") and the stock step the strongest Trainer runs ("stock":
        stock model, nn.Dropout, last layer at every position, dense fused AdamW, clip_grad_norm_) alternate on the
        same real batches; step seconds = fixed + per-token × padded tokens is fitted for each (least squares).

Every variant is a `runtime.levers` value (tuneforge.config.levers: `all`, `none`, a comma list of levers to turn
on, or `all,-name` to turn one off); nothing is patched. In `run` mode every run is `python -m tuneforge finetune`
with bench_finetune's arguments (same rows, hyperparameters and seed, fp32, no evaluation during training) plus
`--set runtime.levers=<value>`, in its own child process. In `step` and `cost` mode each variant's model and
optimizer are built in this process from the parsed setting (`parse_levers`) through TuneForge's public functions,
as the training session does: `train.session.apply_levers(model, runtime)` (dropout, attention, first token),
`row_table(model, ids)`, `build_optimizer(..., table, fused=...)`.
In `run` mode the order of the variants rotates every round; the effect of a lever is the median train seconds with
it off over the median with everything on (> 1: the lever saves that factor). Train seconds are summary.json's:
loading, tokenizing and the closing evaluation are outside. Dev accuracy is reported to show the levers do not move
it beyond a seed's noise (the dropout levers draw different random masks, so single runs differ a little).

Variants (name: runtime.levers value; see LEVERS_OF):
  all                 all: the shipped defaults
  no_first_token      all,-first_token: the last layer runs at every position
  no_fast_dropout     all,-fast_dropout: PyTorch's nn.Dropout and SDPA's own attention dropout (fast_attention needs
                      fast_dropout's masks, so it is off too)
  no_fast_attention   all,-fast_attention: FastDropout modules, but SDPA's own attention dropout
  no_fused_adamw      all,-fused_adamw,-embedding_rows: PyTorch's default AdamW; the row table's optimizer is a fused
                      AdamW, so the embedding trains densely too (as this variant always measured)
  no_embedding_rows   all,-embedding_rows: the word embedding trained densely: a vocabulary-sized gradient,
                      clip_grad_norm_ and fused AdamW over every row
  no_reuse_memory     all,-reuse_memory: glibc returns freed blocks; they fault back in (run mode only: per process)
  no_length_grouping  all,-length_grouping: plainly shuffled batches (more padding; run mode only)
  cost mode's stock   --stock-levers (default `fused_adamw`: the strongest Trainer's step keeps fused AdamW, which
                      is transformers' default optimizer on torch >= 2.8; `--stock-levers none` for PyTorch's
                      default AdamW as well)
Writes benchmarks/results/probe_levers_<rows>.json (`run`) or probe_levers_step.json (`step`; with another
`--train-rows`, probe_levers_step_<rows>.json) or probe_levers_cost.json (`cost`), `_bf16` before `.json` with
--precision bf16, or --out; work files go to runs/probe-levers-<rows>/.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from benchmarks.common import (
    HP,
    RESULTS,
    ROOT,
    add_output_args,
    emit,
    environment,
    guard_output,
    invocation,
    load_average,
    module_cmd,
    prepare_finetune_data,
    run_marked,
    shown,
    sst2_frames,
    sst2_subset,
    tuneforge_args,
    write_result,
)

PHASES = ("forward", "backward", "clip", "optimizer")  # step mode: where each variant's time goes
# Each variant as a runtime.levers value (module doc). no_fused_adamw also trains the embedding densely: the row
# table's optimizer is a fused AdamW.
LEVERS_OF = {"all": "all", "no_first_token": "all,-first_token", "no_fast_dropout": "all,-fast_dropout",
             "no_fast_attention": "all,-fast_attention", "no_fused_adamw": "all,-fused_adamw,-embedding_rows",
             "no_embedding_rows": "all,-embedding_rows", "no_reuse_memory": "all,-reuse_memory",
             "no_length_grouping": "all,-length_grouping"}
VARIANTS = tuple(LEVERS_OF)
# step mode: the levers that act inside one model + optimizer (reuse_memory is per process, length_grouping changes
# the batches: whole runs only)
STEP_VARIANTS = ("all", "no_first_token", "no_fast_dropout", "no_fast_attention", "no_fused_adamw", "no_embedding_rows")
# cost mode: the step the strongest Trainer runs: stock model, nn.Dropout and SDPA's attention dropout, the last layer
# at every position, a dense embedding, clip_grad_norm_, and fused AdamW (transformers' default on torch >= 2.8)
STOCK_LEVERS = "fused_adamw"


def child(args) -> None:
    """One whole `tuneforge finetune` run with `--set runtime.levers=<the variant's value>`, in this process (the
    CLI's own entry point) so the peak RSS emit() reports is the run's own."""
    work = Path(args.work)
    out = work / "run"
    argv = tuneforge_args(work, 1.0, args.threads, args.seed, output=out, levers=LEVERS_OF[args.child])
    sys.argv = ["tuneforge", *argv, "--set", "eval.baseline=false"]
    from tuneforge.cli import main

    main()
    summary = json.loads((out / "summary.json").read_text())
    emit({"train_seconds": summary["train_seconds"], "dev_accuracy": summary["metrics"]["test"]["accuracy"],
          "steps": summary["steps"]})


def run_variant(variant: str, args, round_: int) -> dict:
    cmd = module_cmd("probes.probe_levers", "--child", variant, "--work", str(args.work),
                     "--threads", str(args.threads), "--seed", str(args.seed))
    name = f"{variant}-r{round_}"
    return run_marked(cmd, Path(args.work) / "logs" / f"{name}.log", name)


def summarize(raw: dict) -> tuple[dict, dict]:
    runs = {v: {"train_seconds": statistics.median(r["train_seconds"] for r in rs),
                "dev_accuracy": round(statistics.fmean(r["dev_accuracy"] for r in rs), 5),
                "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in rs), "repeats": rs}
            for v, rs in raw.items()}
    base = runs["all"]["train_seconds"]
    ratios = {v[3:]: round(r["train_seconds"] / base, 3) for v, r in runs.items() if v != "all"}
    return runs, ratios


def step_setup(args, phases: dict):
    """(build, data, batches, embedding rows): build(name, levers) → step(index), one model + optimizer per variant in
    this process built from a runtime.levers value, timing its phases into phases[name]; the SST-2 subset's
    length-grouped batches of epoch 0; how many word-embedding rows the row table holds."""
    import numpy as np
    import torch

    from tuneforge.config.levers import parse_levers
    from tuneforge.config.schema import RuntimeConfig
    from tuneforge.data.encode import LengthGroupedBatches, encode_texts
    from tuneforge.data.labels import LabelSpace
    from tuneforge.model.build import load_classifier, load_tokenizer
    from tuneforge.train.objectives import make_objective
    from tuneforge.train.optim import build_optimizer
    from tuneforge.train.runtime import make_accelerator
    from tuneforge.train.session import apply_levers
    from tuneforge.train.sparse_rows import clip_gradients, row_table

    # fp32 by default, as bench_finetune's runs (auto would pick bf16 on CPUs with native bf16); --precision bf16
    # runs forward and backward in Accelerate's autocast, as the training loop does. The process-wide levers
    # (reuse_memory) are the defaults, the same for every variant.
    accelerator = make_accelerator(RuntimeConfig(device="cpu", threads=args.threads, precision=args.precision))
    train, _ = sst2_frames()
    subset = sst2_subset(train, args.train_rows, args.data_seed)
    labels = LabelSpace.from_labels(sorted(set(subset["label"])))
    tokenizer = load_tokenizer(HP["model"])
    encoded = encode_texts(tokenizer, subset["sentence" if "sentence" in subset else "text"].tolist(), HP["max_length"],
                           labels.encode(subset["label"].tolist()))
    data = LengthGroupedBatches(encoded, tokenizer.pad_token_id or 0)
    batches = data.batches(HP["batch_size"], args.seed, 0)
    # the training objective: the first-token layer acts only on a model use_first_token() enabled
    objective = make_objective("classification", multi_label=False)
    train_ids = [tokenizer.pad_token_id or 0, *(i for row in encoded.input_ids for i in row)]  # as finetune()

    def build(name: str, levers: str):
        """One model + optimizer with the levers `levers` turns on, built as the training session builds them."""
        on = parse_levers(levers)
        torch.manual_seed(args.seed)
        model = apply_levers(load_classifier(HP["model"], labels), RuntimeConfig(levers=levers)).train()
        # the row table's optimizer is a fused AdamW: no table without the fused_adamw lever
        table = row_table(model, train_ids) if {"embedding_rows", "fused_adamw"} <= on else None
        optimizer = build_optimizer(model, HP["learning_rate"], HP["weight_decay"], table,
                                    fused="fused_adamw" in on)
        optimizer = accelerator.prepare_optimizer(optimizer)
        spent = phases.setdefault(name, dict.fromkeys(PHASES, 0.0))

        def step(index: np.ndarray) -> None:
            with accelerator.autocast():
                t0 = time.perf_counter()
                loss, _ = objective(model, data.collate(index, 0))
                t1 = time.perf_counter()
                accelerator.backward(loss)
                t2 = time.perf_counter()
            clip_gradients(accelerator, model, optimizer, 1.0)  # as the loop: the table's rows count too
            t3 = time.perf_counter()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            for name, (a, b) in zip(PHASES, ((t0, t1), (t1, t2), (t2, t3), (t3, time.perf_counter()))):
                spent[name] += b - a

        return step

    return build, data, batches, {"in_table": len(set(train_ids)), "vocabulary": tokenizer.vocab_size}


def step_probe(args) -> dict:
    """Every STEP_VARIANT as its own model + optimizer in this process, timed on the same batches, interleaved."""
    phases: dict[str, dict[str, float]] = {}
    build, _, batches, embedding_rows = step_setup(args, phases)
    variants = ["all", *[v for v in args.variants.split(",") if v in STEP_VARIANTS and v != "all"]]
    steps = {v: build(v, LEVERS_OF[v]) for v in variants}
    for index in batches[:3]:  # warm-up: allocator, caches, optimizer state
        for step in steps.values():
            step(index)
    for spent in phases.values():
        spent.update(dict.fromkeys(PHASES, 0.0))
    seconds = {v: [] for v in variants}
    k = args.steps_per_round
    rounds = max(1, min(args.rounds, (len(batches) - 3) // k))
    for r in range(rounds):
        chunk = batches[3 + r * k: 3 + (r + 1) * k]
        for v in variants[r % len(variants):] + variants[:r % len(variants)]:
            start = time.perf_counter()
            for index in chunk:
                steps[v](index)
            seconds[v].append((time.perf_counter() - start) / len(chunk))
        print(f"  round {r + 1}/{rounds}: " + ", ".join(f"{v} {1000 * seconds[v][-1]:.0f} ms" for v in variants))
    ratios = {v[3:]: round(statistics.median(a / b for a, b in zip(seconds[v], seconds["all"])), 4)
              for v in variants if v != "all"}
    spread = {v[3:]: [round(min(a / b for a, b in zip(seconds[v], seconds["all"])), 3),
                      round(max(a / b for a, b in zip(seconds[v], seconds["all"])), 3)]
              for v in variants if v != "all"}
    return {"benchmark": "probe_levers_step", "train_rows": args.train_rows, "rounds": rounds, "steps_per_round": k,
            "embedding_rows": embedding_rows, "levers": {v: LEVERS_OF[v] for v in variants},
            "ratios": ratios, "targets_met": {"every_lever_saves_time": all(x > 1.0 for x in ratios.values())},
            "note": "ratio = median over rounds of (step seconds with the lever off ÷ with every lever on), the "
                    "same batches interleaved in one process (> 1: the lever helps); spread = min and max per round",
            "spread": spread, "ms_per_step_median": {v: round(1000 * statistics.median(x), 1)
                                                     for v, x in seconds.items()},
            "ms_per_step_by_phase": {v: {name: round(1000 * t / (rounds * k), 2) for name, t in spent.items()}
                                     for v, spent in phases.items()},
            "phase_note": "mean ms per timed step in each phase (forward, backward, clip, optimizer step + zero_grad), "
                          "summed over the same interleaved rounds: a lever should move only its own phases",
            "command": invocation("probes.probe_levers"), "machine": {**environment(args.threads),
                                                                    "load_average_at_end": load_average()}}


def cost_probe(args) -> dict:
    """Step seconds against padded tokens, TuneForge's step ("all") and the stock step, on the same real batches."""
    import numpy as np

    build, data, batches, _ = step_setup(args, {})
    levers = {"all": "all", "stock": args.stock_levers}
    variants = tuple(levers)
    steps = {v: build(v, levers[v]) for v in variants}
    for index in batches[:3]:  # warm-up: allocator, caches, optimizer state
        for step in steps.values():
            step(index)
    chosen = batches[3:3 + args.rounds * args.steps_per_round]
    points = {v: [] for v in variants}
    for i, index in enumerate(chosen):
        tokens = len(index) * int(data.lengths[index].max())  # collate pads to the longest row
        for v in variants[i % 2:] + variants[:i % 2]:
            start = time.perf_counter()
            steps[v](index)
            points[v].append((tokens, time.perf_counter() - start))
    fits = {}
    for v, pts in points.items():
        x, y = np.array([p[0] for p in pts], dtype=float), np.array([p[1] for p in pts])
        slope, intercept = np.polyfit(x, y, 1)
        r2 = 1 - float(((y - (slope * x + intercept)) ** 2).sum() / ((y - y.mean()) ** 2).sum())
        fits[v] = {"fixed_ms": round(1000 * intercept, 1), "us_per_padded_token": round(1e6 * slope, 1),
                   "r2": round(r2, 3), "mean_step_ms": round(1000 * float(y.mean()), 1)}
    mean_tokens = float(np.mean([p[0] for p in points["all"]]))
    ratios = {"stock_over_all_mean_step": round(fits["stock"]["mean_step_ms"] / fits["all"]["mean_step_ms"], 3),
              "stock_over_all_fixed": round(fits["stock"]["fixed_ms"] / fits["all"]["fixed_ms"], 3),
              "stock_over_all_per_token": round(fits["stock"]["us_per_padded_token"] /
                                                fits["all"]["us_per_padded_token"], 3)}
    return {"benchmark": "probe_levers_cost", "train_rows": args.train_rows, "batches": len(chosen),
            "mean_padded_tokens_per_step": round(mean_tokens, 1), "fits": fits, "ratios": ratios, "levers": levers,
            "note": "least-squares fit of step seconds = fixed + per-token × padded tokens over the same real "
                    "SST-2 batches, the two steps alternating; stock = runtime.levers " + args.stock_levers
                    + (" = the strongest Trainer's step (stock model, nn.Dropout, the last layer at every position, "
                       "dense fused AdamW, clip_grad_norm_)" if args.stock_levers == STOCK_LEVERS else "")
                    + ", without the Trainer's own loop and collator",
            "command": invocation("probes.probe_levers"), "machine": {**environment(args.threads),
                                                                    "load_average_at_end": load_average()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=["step", "run", "cost"], default="step",
                    help="step: interleaved steps in one process (fine levers); run: whole fine-tune runs; cost: "
                         "fixed and per-token step cost, TuneForge vs the stock step")
    ap.add_argument("--train-rows", type=int, default=4000)
    ap.add_argument("--rounds", type=int, default=0, help="run: runs per variant (default 3); step: rounds "
                                                         "(default 12); order rotated each round, medians")
    ap.add_argument("--steps-per-round", type=int, default=8, help="step mode: batches per variant per round")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated; 'all' is always included")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--data-seed", type=int, default=0)
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                    help="step and cost modes: every step in this precision (bf16: Accelerate's autocast); the "
                         "results file gets a _bf16 suffix")
    ap.add_argument("--stock-levers", default=STOCK_LEVERS,
                    help="cost mode: the runtime.levers value of the stock step (default fused_adamw: the strongest "
                         "Trainer's step; none: PyTorch's default AdamW too)")
    add_output_args(ap, None)
    ap.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    if args.precision != "fp32" and args.mode == "run":
        raise SystemExit("--precision is for the step and cost modes (whole runs: benchmarks.bench_finetune --precision)")
    suffix = "" if args.precision == "fp32" else f"_{args.precision}"
    if args.mode == "cost":
        out = args.out or RESULTS / f"probe_levers_cost{suffix}.json"
        started = guard_output(out, args.allow_dirty)
        args.rounds = args.rounds or 12
        result = {**cost_probe(args), "precision": args.precision}
        path = write_result(out, result, started, args.allow_dirty)
        for v, fit in result["fits"].items():
            print(f"{v:<6} {fit['fixed_ms']:6.1f} ms + {fit['us_per_padded_token']:6.1f} µs × padded tokens "
                  f"(r² {fit['r2']}), mean step {fit['mean_step_ms']} ms")
        print(f"wrote {shown(path)}")
        return None
    if args.mode == "step":
        out = args.out or RESULTS / ("probe_levers_step" + ("" if args.train_rows == 4000 else f"_{args.train_rows}")
                                     + f"{suffix}.json")
        started = guard_output(out, args.allow_dirty)
        args.rounds = args.rounds or 12
        result = {**step_probe(args), "precision": args.precision}
        path = write_result(out, result, started, args.allow_dirty)
        for lever, ratio in result["ratios"].items():
            print(f"{lever:<16} off costs {ratio:.3f}×  (rounds {result['spread'][lever][0]}–{result['spread'][lever][1]})")
        print(f"wrote {shown(path)}")
        return None
    args.rounds = args.rounds or 3
    variants = ["all", *[v for v in args.variants.split(",") if v and v != "all"]]
    for v in variants:
        if v not in VARIANTS:
            raise SystemExit(f"unknown variant {v!r}; choose from {', '.join(VARIANTS)}")
    out = args.out or RESULTS / f"probe_levers_{args.train_rows}.json"
    started = guard_output(out, args.allow_dirty)
    args.work = str(ROOT / "runs" / f"probe-levers-{args.train_rows}")
    machine = environment(args.threads)
    data = prepare_finetune_data(args.train_rows, args.data_seed, Path(args.work) / "data")
    raw, orders = {v: [] for v in variants}, []
    for k in range(args.rounds):
        order = variants[k % len(variants):] + variants[:k % len(variants)]
        orders.append(order)
        for v in order:
            raw[v].append(run_variant(v, args, k + 1))
    runs, ratios = summarize(raw)
    result = {"benchmark": "probe_levers", "data": data, "rounds": args.rounds, "orders": orders, "seed": args.seed,
              "ratios": ratios,
              "targets_met": {"every_lever_saves_time": all(r > 1.0 for r in ratios.values())},
              "note": "ratio = median train seconds with the lever off ÷ with every lever on (> 1: the lever helps)",
              "levers": {v: LEVERS_OF[v] for v in variants}, "runs": runs, "command": invocation("probes.probe_levers"),
              "machine": {**machine, "load_average_at_end": load_average()}}
    path = write_result(out, result, started, args.allow_dirty)
    width = max(len(v) for v in runs)
    for v, r in runs.items():
        effect = "" if v == "all" else f"  off costs {ratios[v[3:]]:.3f}×"
        print(f"{v:<{width}}  {r['train_seconds']:6.2f} s  acc {r['dev_accuracy']:.4f}{effect}")
    print(f"wrote {shown(path)}")


if __name__ == "__main__":
    main()

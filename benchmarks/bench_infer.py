"""Inference speed: TuneForge's predictor vs `transformers.pipeline("text-classification")` on one model folder.

Usage:  python -m benchmarks.bench_infer [--model runs/bench-sst2-full/run/final] [--rows 872] [--rounds 3]
        [--threads N] [--out benchmarks/results/bench_infer.json] [--allow-dirty]
Quick:  python -m benchmarks.bench_infer --rows 300 --rounds 2

Variants, all on the same fine-tuned folder: TuneForge PyTorch eager (`tuneforge.load(final)`; fp32, bf16
weights with `precision="bf16"`, int8 dynamically quantized linears with `precision="int8"`), and ONNX Runtime
fp32 and int8 (`tuneforge export`, then `tuneforge.load(export)`), each against the same pipeline numbers.
- Batch 1: `predict([text])` / `pipe(text)` per SST-2 dev sentence (tokenization included), all four backends
  interleaved per sentence (order rotated) so machine noise hits them alike; p50/p95 after a warm-up.
- Batch 32: each tool's bulk call over all rows (`pipe(texts, batch_size=32)`, `load(..., batch_size=32)
  .predict(texts)`; TuneForge sorts by length inside the call, the pipeline keeps input order), and the same
  fixed chunks of 32 rows in input order for both; rounds interleaved, median sentences/s.
- Agreement: predicted labels of each TuneForge variant vs the pipeline's, plus accuracy vs the dev labels.
- Dedicated process (`--dedicated-rounds`, default 3): batch-1 p50 of the pipeline and of ONNX int8 (spinning as
  `tuneforge.load` sets it, and off), each alone in its own child process, one after another (order rotated per round).
torch uses --threads (default: the cores) for both TuneForge and the pipeline; ONNX Runtime gets the same intra-op
threads (sequential executor) and `tuneforge.load`'s default spinning, "call": threads spin while a call runs and sleep
after it, so the PyTorch runs beside them keep their cores (`probe_batch1.py` measures what each mode costs them).
The graphs are `tuneforge export`'s default, opset 23 (one ONNX Attention op per layer).
`targets_met` holds the issue's three inference targets (PyTorch eager batch-1 p50 ≤ 0.5× the pipeline's; ONNX batch-1
p50 ≤ 0.33×, interleaved; batch-32 sentences/s ≥ 2×), each checked on the path a user gets by default
(`common.judge_infer`): `tuneforge.load(folder)` = eager fp32, `tuneforge export` = ONNX fp32. Each target records
that path's value (TuneForge ÷ pipeline), whether it is met, and `variants_meeting`: the other measured paths that meet
the bound (eager int8, ONNX int8, ...), named as such. `all` is over the default paths only.
Default model: the newest classifier under runs/bench-sst2-*/run/final or runs/evidence/*/final; without one, a quick
30-step fine-tune on 500 SST-2 rows into runs/bench-infer-model.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import (
    QUICK_MODEL,
    RESULTS,
    ROOT,
    add_output_args,
    environment,
    export_onnx,
    find_classifier,
    guard_output,
    judge_infer,
    load_average,
    module_cmd,
    quick_classifier,
    read_sst2,
    shown,
    write_result,
)

PIPELINE = "pipeline"
VARIANTS = ("eager", "eager_bf16", "eager_int8", "onnx_fp32", "onnx_int8")


def load_runners(model: str, exports: dict, threads: int, batch_size: int) -> tuple[dict, dict]:
    """name → (one(text) → label, bulk(texts) → labels); and what each backend runs with."""
    import torch
    from transformers import pipeline
    from transformers.utils import logging

    import tuneforge

    logging.disable_progress_bar()
    torch.set_num_threads(threads)
    pipe = pipeline("text-classification", model=model, device="cpu")
    runners = {PIPELINE: (lambda t: pipe(t)[0]["label"],
                          lambda ts: [o["label"] for o in pipe(ts, batch_size=batch_size)])}
    info = {PIPELINE: {"dtype": str(pipe.model.dtype), "torch_threads": torch.get_num_threads(),
                       "attn_implementation": pipe.model.config._attn_implementation}}
    predictors = {"eager": tuneforge.load(model, batch_size=batch_size),
                  "eager_bf16": tuneforge.load(model, batch_size=batch_size, precision="bf16"),
                  "eager_int8": tuneforge.load(model, batch_size=batch_size, precision="int8")}
    predictors.update({name: tuneforge.load(e["folder"], batch_size=batch_size, threads=threads)
                       for name, e in exports.items()})
    for name, p in predictors.items():
        runners[name] = (lambda t, p=p: p.predict([t])[0]["label"], lambda ts, p=p: [r["label"] for r in p.predict(ts)])
        session = getattr(p, "session", None)
        info[name] = ({"onnxruntime_intra_op_threads": session.get_session_options().intra_op_num_threads,
                       "providers": session.get_providers()} if session is not None
                      else {"dtype": str(p.model.dtype), "torch_threads": torch.get_num_threads(),
                            "attn_implementation": p.model.config._attn_implementation})
    return runners, info


def rotated(names: list[str], k: int) -> list[str]:
    k %= len(names)
    return names[k:] + names[:k]


def batch1(runners: dict, texts: list[str], warmup: int) -> tuple[dict, dict]:
    """Per-call milliseconds and labels, one sentence at a time, backends interleaved per sentence."""
    names = list(runners)
    for text in texts[:warmup]:
        for name in names:
            runners[name][0](text)
    ms, labels = {n: [] for n in names}, {n: [] for n in names}
    for i, text in enumerate(texts):
        for name in rotated(names, i):
            t0 = time.perf_counter()
            labels[name].append(runners[name][0](text))
            ms[name].append((time.perf_counter() - t0) * 1000)
    return ms, labels


DEDICATED = ("pipeline", "onnx_int8", "onnx_int8_spinning_off")


def dedicated_child(name: str, model: str, folder: str | None, texts: list[str], threads: int, warmup: int) -> dict:
    """Batch-1 latency of one backend alone in this process (a dedicated inference process)."""
    import torch

    torch.set_num_threads(threads)
    if name == PIPELINE:
        from transformers import pipeline
        from transformers.utils import logging

        logging.disable_progress_bar()
        pipe = pipeline("text-classification", model=model, device="cpu")
        one = lambda t: pipe(t)[0]["label"]  # noqa: E731
    else:
        import tuneforge

        p = tuneforge.load(folder, threads=threads, spinning="off" if name.endswith("_spinning_off") else None)
        one = lambda t: p.predict([t])[0]["label"]  # noqa: E731
    for text in texts[:warmup]:
        one(text)
    ms = []
    for text in texts:
        t0 = time.perf_counter()
        one(text)
        ms.append((time.perf_counter() - t0) * 1000)
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95))}


def dedicated(model: str, exports: dict, args) -> dict:
    """Each backend in its own child process, one after another (order rotated per round), median p50 over rounds.

    Nothing else runs beside the backend, as in a dedicated inference process: no other backend's weights evict
    this one's from the caches between sentences. ONNX int8 runs with the default spinning and with spinning off."""
    per = {n: [] for n in DEDICATED}
    for r in range(args.dedicated_rounds):
        for name in rotated(list(DEDICATED), r):
            folder = exports["onnx_int8"]["folder"] if name != PIPELINE else ""
            cmd = module_cmd("bench_infer", "--child-dedicated", name, "--model", model, "--folder", folder,
                             "--rows", str(args.rows), "--threads", str(args.threads), "--warmup", str(args.warmup))
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout
            per[name].append(json.loads(out.strip().splitlines()[-1]))
    latency = {n: {"p50_ms": round(float(np.median([x["p50_ms"] for x in v])), 2),
                   "p95_ms": round(float(np.median([x["p95_ms"] for x in v])), 2),
                   "rounds_p50_ms": [round(x["p50_ms"], 2) for x in v]} for n, v in per.items()}
    ratios = {f"p50_batch1_{n}_dedicated": round(latency[PIPELINE]["p50_ms"] / latency[n]["p50_ms"], 2)
              for n in DEDICATED if n != PIPELINE}
    return {"latency_batch1": latency, "ratios": ratios}


def chunked(bulk, texts: list[str], size: int) -> list[str]:
    return [label for i in range(0, len(texts), size) for label in bulk(texts[i:i + size])]


def throughput(runners: dict, texts: list[str], rounds: int, batch_size: int) -> tuple[dict, dict]:
    """Sentences/s per round for the bulk call and for fixed chunks of `batch_size`; bulk labels."""
    names = list(runners)
    modes = {"bulk": lambda name: runners[name][1](texts),
             "chunks": lambda name: chunked(runners[name][1], texts, batch_size)}
    for name in names:  # warm-up at the full batch size
        runners[name][1](texts[: 2 * batch_size])
    rates = {mode: {n: [] for n in names} for mode in modes}
    labels = {}
    for r in range(rounds):
        for mode, call in modes.items():
            for name in rotated(names, r):
                t0 = time.perf_counter()
                out = call(name)
                rates[mode][name].append(len(texts) / (time.perf_counter() - t0))
                labels.setdefault(name, out)
    return rates, labels


def summarize(ms: dict, rates: dict) -> tuple[dict, dict, dict]:
    """(latency per backend, throughput per mode and backend, ratios: > 1 = TuneForge better)."""
    latency = {n: {"p50_ms": round(float(np.percentile(v, 50)), 2), "p95_ms": round(float(np.percentile(v, 95)), 2),
                   "mean_ms": round(float(np.mean(v)), 2), "calls": len(v)} for n, v in ms.items()}
    speed = {mode: {n: {"median_sentences_per_s": round(float(np.median(v)), 1),
                        "rounds": [round(x, 1) for x in v]} for n, v in per.items()} for mode, per in rates.items()}
    ratios = {}
    for v in VARIANTS:
        if v not in latency:
            continue
        for q in ("p50", "p95"):
            ratios[f"{q}_batch1_{v}"] = round(latency[PIPELINE][f"{q}_ms"] / latency[v][f"{q}_ms"], 2)
        for mode, key in (("bulk", f"throughput_batch32_{v}"), ("chunks", f"throughput_batch32_fixed_chunks_{v}")):
            ratios[key] = round(speed[mode][v]["median_sentences_per_s"]
                                / speed[mode][PIPELINE]["median_sentences_per_s"], 2)
    return latency, speed, ratios


def agreement(labels: dict, reference: list[str]) -> dict:
    return {n: round(float(np.mean([a == b for a, b in zip(v, reference)])), 4) for n, v in labels.items()
            if n != PIPELINE}


def accuracy(labels: dict, gold: list[str]) -> dict | None:
    if not set(gold) <= {label for v in labels.values() for label in v}:
        return None  # the model's label names are not SST-2's 0/1
    return {n: round(float(np.mean([a == b for a, b in zip(v, gold)])), 4) for n, v in labels.items()}


def print_table(latency: dict, speed: dict, ratios: dict, agree: dict) -> None:
    print(f"\n{'backend':<10} {'p50 ms':>8} {'p95 ms':>8} {'b32 sent/s':>11} {'chunks/s':>9} "
          f"{'p50 ×':>6} {'b32 ×':>6} {'agree':>6}")
    for n in latency:
        mark = n != PIPELINE
        print(f"{n:<10} {latency[n]['p50_ms']:>8.2f} {latency[n]['p95_ms']:>8.2f} "
              f"{speed['bulk'][n]['median_sentences_per_s']:>11.1f} {speed['chunks'][n]['median_sentences_per_s']:>9.1f} "
              f"{ratios[f'p50_batch1_{n}'] if mark else 1:>6.2f} {ratios[f'throughput_batch32_{n}'] if mark else 1:>6.2f} "
              f"{agree['batch1'][n] if mark else 1:>6.3f}")
    print("(× = pipeline ÷ TuneForge latency, TuneForge ÷ pipeline throughput: > 1 = TuneForge faster)")


def print_dedicated(section: dict) -> None:
    print("\ndedicated process, batch 1 (each backend alone in its own process):")
    for n, v in section["latency_batch1"].items():
        ratio = section["ratios"].get(f"p50_batch1_{n}_dedicated", 1.0)
        print(f"  {n:<20} p50 {v['p50_ms']:>6.2f} ms  p95 {v['p95_ms']:>6.2f} ms  × {ratio:.2f}")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="fine-tuned classifier folder (default: newest benchmark run, else a quick one)")
    ap.add_argument("--rows", type=int, default=0, help="SST-2 dev sentences to time (0 = all 872)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the batch-32 passes")
    ap.add_argument("--warmup", type=int, default=20, help="untimed batch-1 calls per backend first")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="torch and ORT threads")
    ap.add_argument("--no-onnx", action="store_true", help="eager only (skip the two exports)")
    ap.add_argument("--dedicated-rounds", type=int, default=3,
                    help="rounds of the dedicated-process batch-1 runs (pipeline, ONNX int8 with default spinning and with spinning off); 0 = skip")
    ap.add_argument("--child-dedicated", choices=DEDICATED, help=argparse.SUPPRESS)
    ap.add_argument("--folder", help=argparse.SUPPRESS)
    add_output_args(ap, RESULTS / "bench_infer.json")
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.child_dedicated:
        texts = read_sst2("dev", args.rows or None)[0]
        print(json.dumps(dedicated_child(args.child_dedicated, args.model, args.folder, texts, args.threads, args.warmup)))
        return
    started = guard_output(args.out, args.allow_dirty)
    model, finetune_cmd = args.model or find_classifier(), None
    if model is None:
        model, finetune_cmd = quick_classifier()
    texts, gold = read_sst2("dev", args.rows or None)
    result = {"benchmark": "bench_infer", "model": model,
              "quick_model": Path(model).resolve().is_relative_to(QUICK_MODEL.resolve()),
              "quick_model_command": finetune_cmd,  # null for a reused quick model
              "data": f"SST-2 dev, first {len(texts)} sentences",
              "batch_size": args.batch_size, "rounds": args.rounds, "warmup_calls": args.warmup,
              **environment(args.threads, ("onnxruntime", "onnx"))}
    with tempfile.TemporaryDirectory(prefix="bench-infer-") as tmp:
        exports = {} if args.no_onnx else export_onnx(model, Path(tmp))
        runners, result["backends"] = load_runners(model, exports, args.threads, args.batch_size)
        ms, labels1 = batch1(runners, texts, args.warmup)
        rates, labels32 = throughput(runners, texts, args.rounds, args.batch_size)
        del runners  # the dedicated runs below get the machine to themselves
        if exports and args.dedicated_rounds:
            result["dedicated_process"] = dedicated(model, exports, args)
    result["exports"] = {k: {kk: vv for kk, vv in v.items() if kk != "folder"} for k, v in exports.items()}
    latency, speed, ratios = summarize(ms, rates)
    agree = {"batch1": agreement(labels1, labels1[PIPELINE]), "batch32": agreement(labels32, labels32[PIPELINE])}
    ratios.update(result.get("dedicated_process", {}).get("ratios", {}))
    result.update(ratios=ratios, targets_met=judge_infer(ratios),
                  targets="each on the default path (common.INFER_TARGETS): batch-1 p50 ≤ 0.5× the pipeline's "
                          "(eager fp32, tuneforge.load(folder)), ≤ 0.33× (ONNX fp32, tuneforge export's default, "
                          "interleaved); batch-32 sentences/s ≥ 2× (eager fp32); variants that meet a bound are "
                          "listed under variants_meeting",
                  latency_batch1=latency, throughput_batch32=speed, label_agreement_with_pipeline=agree,
                  dev_accuracy_batch1=accuracy(labels1, gold), load_average_at_end=load_average())
    path = write_result(args.out, result, started, args.allow_dirty)
    print_table(latency, speed, ratios, agree)
    if "dedicated_process" in result:
        print_dedicated(result["dedicated_process"])
    for name, v in result["targets_met"].items():
        if name != "all":
            also = f"; met by {v['variants_meeting']}" if v["variants_meeting"] else ""
            print(f"{'met   ' if v['met'] else 'MISSED'} {name}: {v['default_path']} {v['value']} ({v['bound']}){also}")
    print(f"model: {model}\nwrote {shown(path)}")


if __name__ == "__main__":
    main()

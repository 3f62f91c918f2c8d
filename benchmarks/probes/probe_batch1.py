"""Batch-1 probes behind three inference decisions (issue 4): the export opset, ONNX Runtime spinning, and where
eager time goes.

Usage:  python -m benchmarks.probes.probe_batch1 [--model runs/bench-sst2-full/run/final] [--rows 200]

SST-2 dev sentences one at a time, p50 ms after 20 warm-up sentences; `tuneforge export` graphs (fp32 and int8).
1. opset: the same model exported at opset 18 (attention decomposed into ~35 small ops per layer) and 23 (one
   standard ONNX Attention op per layer), four sessions interleaved per sentence, spinning off.
2. spinning: the opset-23 graphs with intra-op spinning off / "call" (spin during a call, sleep after it:
   `session.force_spinning_stop`) / "always" (ONNX Runtime's default), 1 and 2 threads, in blocks of 20 sentences
   per session, sessions rotated per block (an "always" session keeps spinning after its calls and would slow the
   next session in a per-sentence interleaving). Nothing else in the process: the best case for spinning.
3. neighbour: what each spinning mode costs work beside it. A `transformers.pipeline` on the same model alternates
   with the opset-23 int8 session per sentence; the session's spinning mode changes every 25 sentences (rotated),
   and the pipeline's p50 is kept per mode.
4. torch.profiler over the PyTorch eager fp32 forward at batch 1: the share of self CPU time per op.
Writes benchmarks/results/probe_batch1.json (--out).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import (
    RESULTS,
    ROOT,
    add_output_args,
    environment,
    guard_output,
    invocation,
    load_average,
    read_sst2,
    shown,
    write_result,
)


def export(model: str, folder: Path, opset: int, int8: bool) -> Path:
    extra = ["--quantize", "int8"] if int8 else []
    subprocess.run([sys.executable, "-m", "tuneforge", "export", "--model", model, "--output", str(folder),
                    "--opset", str(opset), *extra], check=True, capture_output=True)
    return folder / "model.onnx"


def feeds(folder: Path, texts: list[str]) -> list[dict]:
    import numpy as np
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    return [{k: v.astype(np.int64) for k, v in tok(t, return_tensors="np").items()
             if k in ("input_ids", "attention_mask")} for t in texts]


def p50_ms(runs: dict, n: int, block: int) -> dict:
    """p50 ms of each callable run(i) on items 20..n-1 (items 0..19 warm each up), in blocks of `block` items per
    callable with the order rotated every block; block=1 interleaves per item."""
    times = {name: [] for name in runs}
    names = list(runs)
    for name in names:  # warm-up
        for i in range(20):
            runs[name](i)
    for b, start in enumerate(range(20, n, block)):
        for name in names[b % len(names):] + names[:b % len(names)]:
            for i in range(start, min(start + block, n)):
                t = time.perf_counter()
                runs[name](i)
                times[name].append(time.perf_counter() - t)
    return {name: round(statistics.median(v) * 1000, 3) for name, v in times.items()}


def session_run(session, fs):
    return lambda i: session.run(None, fs[i])


def onnx_probe(model: str, texts: list[str], tmp: Path) -> tuple[dict, dict, dict]:
    from transformers import pipeline

    from tuneforge.serve.onnx_backend import SPINNING, open_session

    graphs = {(kind, opset): export(model, tmp / f"{kind}{opset}", opset, kind == "int8")
              for kind in ("fp32", "int8") for opset in (18, 23)}
    fs = feeds(graphs[("int8", 23)].parent, texts)
    opset = p50_ms({f"{kind}_opset{o}": session_run(open_session(path, 2, "off"), fs)
                         for (kind, o), path in graphs.items()}, len(fs), block=1)
    spinning = {}
    for kind in ("fp32", "int8"):
        # Blocks of 20 sentences per session, sessions rotated per block: an "always" session keeps spinning after
        # its calls, which would slow the next session in a per-sentence interleaving; p50 over blocks shrugs off the
        # first call or two of the next block.
        sessions = {f"{mode}_threads{n}": open_session(graphs[(kind, 23)], n, mode) for mode in SPINNING for n in (1, 2)}
        spinning[kind] = p50_ms({name: session_run(s, fs) for name, s in sessions.items()}, len(fs), block=20)
        del sessions
    pipe = pipeline("text-classification", model=model, device="cpu")
    sessions = {mode: open_session(graphs[("int8", 23)], 2, mode) for mode in SPINNING}
    times = {f"{who}_{mode}": [] for mode in SPINNING for who in ("pipeline", "onnx_int8")}
    for rep in range(2):
        for i, text in enumerate(texts):
            mode = SPINNING[(i // 25 + rep) % len(SPINNING)]
            pair = [("pipeline", lambda text=text: pipe(text)),
                    ("onnx_int8", lambda mode=mode, i=i: sessions[mode].run(None, fs[i]))]
            for who, call in pair[i % 2:] + pair[:i % 2]:
                start = time.perf_counter()
                call()
                if i >= 20 or rep:
                    times[f"{who}_{mode}"].append(time.perf_counter() - start)
    neighbour = {name: round(statistics.median(v) * 1000, 3) for name, v in times.items()}
    return opset, spinning, neighbour


def eager_profile(model: str, texts: list[str]) -> dict:
    import torch
    from torch.profiler import ProfilerActivity, profile

    import tuneforge

    p = tuneforge.load(model)
    encs = [p.tokenizer(t, return_tensors="pt") for t in texts[:50]]
    with torch.inference_mode():
        for e in encs[:10]:
            p.model(**e)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for e in encs:
                p.model(**e)
    rows = sorted(prof.key_averages(), key=lambda r: -r.self_cpu_time_total)
    total = sum(r.self_cpu_time_total for r in rows)
    return {r.key: {"share": round(r.self_cpu_time_total / total, 3), "calls": r.count,
                    "us_per_call": round(r.self_cpu_time_total / r.count, 1)} for r in rows[:6]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "runs" / "bench-sst2-full" / "run" / "final"))
    ap.add_argument("--rows", type=int, default=200)
    add_output_args(ap, RESULTS / "probe_batch1.json")
    args = ap.parse_args()
    started = guard_output(args.out, args.allow_dirty)
    machine = environment(2, ("onnxruntime", "onnx"))
    texts = read_sst2("dev", args.rows)[0]
    with tempfile.TemporaryDirectory() as tmp:
        opset, spinning, neighbour = onnx_probe(args.model, texts, Path(tmp))
    ratios = {f"opset23_speedup_{k}": round(opset[f"{k}_opset18"] / opset[f"{k}_opset23"], 3) for k in ("fp32", "int8")}
    for kind, v in spinning.items():
        for mode in ("call", "always"):
            ratios[f"spinning_{mode}_speedup_{kind}_threads2"] = round(v["off_threads2"] / v[f"{mode}_threads2"], 3)
    for mode in ("call", "always"):
        ratios[f"pipeline_slowdown_beside_spinning_{mode}"] = round(neighbour[f"pipeline_{mode}"] / neighbour["pipeline_off"], 3)
        ratios[f"onnx_int8_over_pipeline_spinning_{mode}"] = round(neighbour[f"onnx_int8_{mode}"] / neighbour[f"pipeline_{mode}"], 3)
    ratios["onnx_int8_over_pipeline_spinning_off"] = round(neighbour["onnx_int8_off"] / neighbour["pipeline_off"], 3)
    result = {"benchmark": "probe_batch1", "command": invocation("probes.probe_batch1"), "rows": len(texts),
              "onnx_p50_ms": {"opset": opset, "spinning": spinning, "neighbour": neighbour}, "ratios": ratios,
              "eager_fp32_profile": eager_profile(args.model, texts),
              "machine": {**machine, "load_average_at_end": load_average()}}
    path = write_result(args.out, result, started, args.allow_dirty)
    print(json.dumps(result, indent=2))
    print(f"wrote {shown(path)}")


if __name__ == "__main__":
    main()

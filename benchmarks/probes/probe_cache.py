"""Why per-sentence interleaving hurts ONNX int8 more than the pipeline: cache residency of the weights (issue 4).

Usage:  python -m benchmarks.probes.probe_cache [--model runs/bench-sst2-full/run/final] [--rows 300] [--sweep-mb 128]

bench_infer.py interleaves every backend per sentence, so each call starts after the other backends have streamed
their own weights through the caches. The int8 model's weights (~24 MB) fit this CPU's 32 MB L3 when it runs
alone; the pipeline's fp32 weights (~91 MB) never do. This probe holds the two backends in one process and times
each SST-2 dev sentence at batch 1 under two conditions, interleaved per sentence (order rotated):
  warm   the same backend ran the previous sentence just before (a dedicated inference process)
  swept  a `--sweep-mb` buffer was read just before (what the other backends' weights do in bench_infer)
and reports p50 per backend and condition, and ONNX int8 / pipeline per condition. If the swept ratio matches
bench_infer's interleaved one and the warm ratio its dedicated-process one, the gap between the two is the cache.
Writes benchmarks/results/probe_cache.json (--out).
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.common import (
    RESULTS,
    ROOT,
    add_output_args,
    environment,
    export_onnx,
    guard_output,
    invocation,
    load_average,
    read_sst2,
    shown,
    write_result,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "runs" / "bench-sst2-full" / "run" / "final"))
    ap.add_argument("--rows", type=int, default=300)
    ap.add_argument("--sweep-mb", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=20)
    add_output_args(ap, RESULTS / "probe_cache.json")
    args = ap.parse_args()
    started = guard_output(args.out, args.allow_dirty)

    import numpy as np
    import torch
    from transformers import pipeline
    from transformers.utils import logging

    import tuneforge

    torch.set_num_threads(args.threads)
    logging.disable_progress_bar()
    texts, _ = read_sst2("dev", args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        folder = export_onnx(args.model, Path(tmp), kinds=("onnx_int8",))["onnx_int8"]["folder"]
        onnx = tuneforge.load(folder, threads=args.threads)
        pipe = pipeline("text-classification", model=args.model, device="cpu")
        call = {"pipeline": lambda t: pipe(t), "onnx_int8": lambda t: onnx.predict([t])}
        sweep = np.ones(args.sweep_mb * 2**20 // 8)
        cases = [(b, c) for b in call for c in ("warm", "swept")]
        ms = {f"{b}_{c}": [] for b, c in cases}
        for i, text in enumerate(texts):
            for b, c in cases[i % 4:] + cases[:i % 4]:
                if c == "warm":
                    call[b](texts[i - 1])
                else:
                    sweep.sum()
                start = time.perf_counter()
                call[b](text)
                if i >= args.warmup:
                    ms[f"{b}_{c}"].append((time.perf_counter() - start) * 1000)
    p50 = {k: round(statistics.median(v), 2) for k, v in ms.items()}
    ratios = {f"onnx_int8_over_pipeline_{c}": round(p50[f"onnx_int8_{c}"] / p50[f"pipeline_{c}"], 3)
              for c in ("warm", "swept")}
    ratios.update({f"swept_over_warm_{b}": round(p50[f"{b}_swept"] / p50[f"{b}_warm"], 3) for b in call})
    result = {"benchmark": "probe_cache", "command": invocation("probes.probe_cache"), "rows": len(texts),
              "sweep_mb": args.sweep_mb, "p50_ms": p50, "ratios": ratios,
              "note": "ratios here are latency over latency (< 1 for int8 / pipeline: int8 faster); swept_over_warm "
                      "> 1: how much a cold cache costs that backend",
              "machine": {**environment(args.threads), "load_average_at_end": load_average()}}
    path = write_result(args.out, result, started, args.allow_dirty)
    print(json.dumps({"p50_ms": p50, "ratios": ratios}, indent=2))
    print(f"wrote {shown(path)}")


if __name__ == "__main__":
    main()

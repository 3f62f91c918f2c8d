"""Batch-1 probes behind two inference decisions (issue 4): ONNX Runtime spinning, and where eager time goes.

Usage:  python benchmarks/probe_batch1.py [--model runs/bench-sst2-full/run/final] [--rows 200]

1. ONNX Runtime sessions (`tuneforge export`, fp32 and int8) on SST-2 dev sentences, one at a time, with intra-op
   spinning off/on and 1/2 threads, interleaved per sentence; p50 ms. Alone in the process, so this is the best
   case for spinning; bench_infer_quick_onnx_spinning.json shows its cost to work beside it.
2. torch.profiler over the PyTorch eager fp32 forward at batch 1: the share of self CPU time per op.
Writes benchmarks/results/probe_batch1.json.
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT.parent / "shared" / "data" / "sst2" / "dev.tsv"


def sentences(rows: int) -> list[str]:
    with open(DEV, encoding="utf-8") as f:
        return [r["sentence"] for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)][:rows]


def onnx_probe(model: str, texts: list[str]) -> dict:
    import numpy as np
    from transformers import AutoTokenizer

    from tuneforge.serve.onnx_backend import open_session

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind, extra in (("fp32", []), ("int8", ["--quantize", "int8"])):
            folder = Path(tmp) / kind
            subprocess.run([sys.executable, "-m", "tuneforge", "export", "--model", model, "--output", str(folder), *extra],
                           check=True, capture_output=True)
            tok = AutoTokenizer.from_pretrained(folder)
            feeds = [{k: v.astype(np.int64) for k, v in tok(t, return_tensors="np").items()
                      if k in ("input_ids", "attention_mask")} for t in texts]
            sessions = {f"spin{int(s)}_threads{n}": open_session(folder / "model.onnx", n, s)
                        for s in (False, True) for n in (1, 2)}
            times = {name: [] for name in sessions}
            for i, feed in enumerate(feeds):
                names = list(sessions)[i % 4:] + list(sessions)[:i % 4]
                for name in names:
                    start = time.perf_counter()
                    sessions[name].run(None, feed)
                    if i >= 20:  # warm-up
                        times[name].append(time.perf_counter() - start)
            out[kind] = {name: round(statistics.median(v) * 1000, 2) for name, v in times.items()}
    return out


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
    args = ap.parse_args()
    texts = sentences(args.rows)
    onnx = onnx_probe(args.model, texts)
    ratios = {f"spinning_speedup_{k}_threads2": round(v["spin0_threads2"] / v["spin1_threads2"], 3) for k, v in onnx.items()}
    result = {"benchmark": "probe_batch1", "command": " ".join(["python", *sys.argv]), "rows": len(texts),
              "onnx_p50_ms": onnx, "ratios": ratios, "eager_fp32_profile": eager_profile(args.model, texts)}
    out = ROOT / "benchmarks" / "results" / "probe_batch1.json"
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

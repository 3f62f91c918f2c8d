"""Where does fine-tuning's resident memory go? The same short `tuneforge finetune` run three times, side by side:
the default levers (`all`: reuse_memory keeps freed blocks in the heap, trim_memory hands their pages back after
each evaluation and every 100 steps), `all,-trim_memory` (the default before trim_memory), and
`all,-reuse_memory,-trim_memory` (glibc's own behaviour). Reported per case: peak RSS of the child (ru_maxrss), the
RSS curve of its train records (`rss_mb` in metrics.jsonl), training tokens/s, and the final metrics.

Default workload (issue 20's memory target, fine-tuning RSS <= 2.5 GB): the multilingual encoder (auto on Chinese
text: multilingual-e5-small) on 2,000 seeded rows of waimai_10k, 400 test rows, `--set train.max_steps=120`,
evaluation every 40 steps.

Usage:  python -m benchmarks.probe_memory [--rows 2000] [--steps 120] [--out benchmarks/results/probe_memory.json]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import (OFFLINE_ENV, RESULTS, SHARED_DATA, add_output_args, environment, guard_output,
                               invocation, shown, write_result)

CASES = {"default": "all", "no_trim": "all,-trim_memory", "glibc": "all,-reuse_memory,-trim_memory"}


def sample(rows: int, test: int, folder: Path) -> tuple[Path, Path]:
    data = list(csv.DictReader((SHARED_DATA / "waimai10k" / "waimai_10k.csv").open(encoding="utf-8")))
    random.Random(0).shuffle(data)
    out = []
    for name, part in (("train", data[:rows]), ("test", data[rows:rows + test])):
        path = folder / f"{name}.csv"
        with path.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(data[0]))
            writer.writeheader()
            writer.writerows(part)
        out.append(path)
    return out[0], out[1]


def run_case(levers: str, train: Path, test: Path, folder: Path, args) -> dict:
    run = folder / levers.replace(",", "_").replace("-", "no-")
    cmd = [sys.executable, "-m", "tuneforge", "finetune", "--train", str(train), "--test", str(test),
           "--text-column", "review", "--output", str(run), "--overwrite", "--set", f"runtime.levers={levers}",
           "--set", f"train.max_steps={args.steps}", "--set", f"eval.every_steps={args.steps // 3}",
           "--set", "runtime.progress=false", "--set", "eval.baseline=false", "--set", "eval.bootstrap_samples=0"]
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "maxrss_kb=%M", *cmd], capture_output=True, text=True,
                          env={**os.environ, **OFFLINE_ENV}, check=False)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{levers}: finetune failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    peak_kb = int(proc.stderr.rsplit("maxrss_kb=", 1)[1].split()[0])
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    train = [r for r in records if "rss_mb" in r]
    summary = json.loads((run / "summary.json").read_text())
    return {"levers": levers, "peak_rss_mb": round(peak_kb / 1024, 1), "wall_seconds": round(wall, 1),
            "rss_curve": [[r["step"], r["rss_mb"]] for r in train],
            "tokens_per_s": summary.get("tokens_per_s"), "train_seconds": summary.get("train_seconds"),
            "test_accuracy": summary["metrics"]["test"]["accuracy"], "auto": [line for line in proc.stdout.splitlines()
                                                                             if line.startswith("auto: model")]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--test-rows", type=int, default=400)
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma list of {', '.join(CASES)}")
    add_output_args(ap, RESULTS / "probe_memory.json")
    args = ap.parse_args()
    started = guard_output(args.out, args.allow_dirty)
    env = environment(os.cpu_count() or 1)
    results = {}
    with tempfile.TemporaryDirectory(prefix="probe-memory-") as tmp:
        folder = Path(tmp)
        train, test = sample(args.rows, args.test_rows, folder)
        for name in args.cases.split(","):
            results[name] = run_case(CASES[name], train, test, folder, args)
            r = results[name]
            print(f"{name} ({r['levers']}): peak RSS {r['peak_rss_mb']} MB, {r['tokens_per_s']} tokens/s, "
                  f"test accuracy {r['test_accuracy']:.4f}", flush=True)
    result = {"benchmark": "probe_memory", "workload": f"waimai_10k {args.rows} train / {args.test_rows} test rows, "
              f"model auto, {args.steps} steps", "cases": results, "target_rss_mb": 2560,
              "command": invocation("probe_memory")}
    path = write_result(args.out, result, started, args.allow_dirty, env)
    print(f"written to {shown(path)}")


if __name__ == "__main__":
    main()

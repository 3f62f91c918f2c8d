"""Speed per token of the multilingual encoder against the default one (issue 20): multilingual-e5-small (12 layers,
250,002-row vocabulary) should train within 1.3× of minilm-l6's time per token × the layer ratio (12 / 6 = 2),
both hidden 384 and intermediate 1,536, so a layer costs the same per token.

Both models fine-tune the same English rows (SST-2, seeded sample) with the defaults a user gets (`--model` given,
nothing else; bf16 on a CPU that computes it natively), `--set train.max_steps=N`, rounds interleaved
(minilm, e5, minilm, e5, ...). Reported per run: the loop's training tokens/s (real tokens of each model's own
tokenizer; evaluations excluded) and peak RSS. Per round: time per token e5 / minilm, divided by the layer ratio
(`per_layer_ratio`, target ≤ 1.3), and the minimum and maximum over rounds.

Usage:  python -m benchmarks.e5_speed [--rows 2000] [--steps 60] [--rounds 3] [--out benchmarks/results/e5_speed.json]
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

MODELS = {"minilm-l6": 6, "multilingual-e5-small": 12}  # alias → layers
TARGET = 1.3


def sample(rows: int, folder: Path) -> Path:
    with (SHARED_DATA / "sst2" / "train.tsv").open(encoding="utf-8") as fh:
        data = list(csv.DictReader(fh, delimiter="\t"))
    random.Random(0).shuffle(data)
    path = folder / "train.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows([(r["text"].strip(), r["label"]) for r in data[:rows]])
    return path


def run(model: str, train: Path, folder: Path, steps: int) -> dict:
    out = folder / model
    cmd = [sys.executable, "-m", "tuneforge", "finetune", "--train", str(train), "--model", model,
           "--output", str(out), "--overwrite", "--set", f"train.max_steps={steps}", "--set", "runtime.progress=false",
           "--set", "eval.baseline=false", "--set", "eval.bootstrap_samples=0", "--set", f"eval.every_steps={steps}"]
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "maxrss_kb=%M", *cmd], capture_output=True, text=True,
                          env={**os.environ, **OFFLINE_ENV}, check=False)
    if proc.returncode:
        raise SystemExit(f"{model}: finetune failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    summary = json.loads((out / "summary.json").read_text())
    return {"tokens_per_s": summary["tokens_per_s"], "tokens": summary["tokens"],
            "train_seconds": summary["train_seconds"], "steps": summary["steps"],
            "peak_rss_mb": round(int(proc.stderr.rsplit("maxrss_kb=", 1)[1].split()[0]) / 1024, 1),
            "wall_seconds": round(time.perf_counter() - start, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=3)
    add_output_args(ap, RESULTS / "e5_speed.json")
    args = ap.parse_args()
    started = guard_output(args.out, args.allow_dirty)
    env = environment(os.cpu_count() or 1)
    rounds = []
    with tempfile.TemporaryDirectory(prefix="e5-speed-") as tmp:
        folder = Path(tmp)
        train = sample(args.rows, folder)
        for k in range(args.rounds):
            runs = {model: run(model, train, folder, args.steps) for model in MODELS}
            tpt = {m: 1.0 / r["tokens_per_s"] for m, r in runs.items()}  # seconds per token
            ratio = tpt["multilingual-e5-small"] / tpt["minilm-l6"]
            per_layer = ratio / (MODELS["multilingual-e5-small"] / MODELS["minilm-l6"])
            rounds.append({"round": k, "runs": runs, "time_per_token_ratio": round(ratio, 3),
                           "per_layer_ratio": round(per_layer, 3)})
            print(f"round {k}: minilm {runs['minilm-l6']['tokens_per_s']} tok/s, e5 "
                  f"{runs['multilingual-e5-small']['tokens_per_s']} tok/s; e5/minilm time per token {ratio:.2f}, "
                  f"per layer {per_layer:.2f} (target <= {TARGET})", flush=True)
    per_layer = [r["per_layer_ratio"] for r in rounds]
    result = {"benchmark": "e5_speed", "workload": f"SST-2 {args.rows} seeded train rows, {args.steps} steps, "
              "defaults (bf16 where native), each model's own tokenizer", "layers": MODELS, "target_per_layer": TARGET,
              "rounds": rounds, "per_layer_min": min(per_layer), "per_layer_max": max(per_layer),
              "met": max(per_layer) <= TARGET, "command": invocation("e5_speed")}
    path = write_result(args.out, result, started, args.allow_dirty, env)
    print(f"per layer {min(per_layer):.2f}-{max(per_layer):.2f} (target <= {TARGET}); written to {shown(path)}")


if __name__ == "__main__":
    main()

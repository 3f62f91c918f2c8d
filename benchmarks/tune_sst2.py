"""Hyperparameter search evidence (issue 21): `tuneforge tune` on 2,000 SST-2 rows, 20 trials. Two numbers:
1. the best trial's config vs TuneForge's defaults, each retrained on the same seeds and scored on the SST-2 dev set
   (872 rows, never seen by the search: validation is carved from train);
2. the search's wall time with the median pruner vs without (`--pruner none`), same space, seed and trials.

Usage:  python -m benchmarks.tune_sst2 [--rows 2000] [--trials 20] [--seeds 42,43,44] [--parallel 1]
        [--model minilm-l6] [--set KEY=VALUE ...] [--work DIR] [--out benchmarks/results/tune_sst2.json]
Smoke:  python -m benchmarks.tune_sst2 --smoke --model FOLDER --out /tmp/tune_sst2.json
        (200 rows, 3 trials, seed 42, at most 6 optimizer steps a run: a plumbing check, not evidence)

1. Data: the seeded 2,000-row sample every SST-2 benchmark uses (common.prepare_sst2) as train, the dev set as test;
   `data.validation_fraction` 0.1 of train (stratified, seeded) is the validation set the search optimises on.
2. Base config: TuneForge's defaults (model auto → minilm-l6 for English, every train/eval setting auto), the TF-IDF
   baseline and bootstrap intervals off (they do not change training; they cost time in every trial).
3. Search (twice: --pruner median, then --pruner none; TPE seed 0): learning rate 1e-5..3e-4 (log), batch size
   16/32, epochs 2..6, warm-up 0..0.2, weight decay 0..0.1. Trial 0 of each is the defaults.
4. Retrain: best.yaml of the pruned search and the base config, once per seed (`--set train.seed=S`); the dev
   accuracy of each (summary.json's test split). Same seeds on both sides, so the gain is paired per seed.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

from benchmarks.common import (RESULTS, add_output_args, environment, guard_output, invocation, prepare_sst2,
                               run_and_write)

SPACE = {"lr": "1e-5:3e-4:log", "batch-size": "16,32", "epochs": "2:6", "warmup": "0:0.2", "weight-decay": "0:0.1"}
SMOKE = {"rows": 200, "trials": 3, "seeds": "42"}
SMOKE_SET = ["train.max_steps=6", "eval.every_steps=2"]


def base_config(train: Path, dev: Path, model: str, extra: list[str]) -> dict:
    cfg = {"model": {"name": model}, "data": {"train": str(train), "test": str(dev), "validation_fraction": 0.1},
           "eval": {"baseline": False, "bootstrap_samples": 0}, "runtime": {"progress": False}}
    for item in extra:  # --set KEY=VALUE, applied here so the base config (trial 0) includes them
        key, _, value = item.partition("=")
        node = cfg
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return cfg


def tuneforge(args: list[str], cwd: Path, log: Path) -> float:
    """`python -m tuneforge ARGS` in `cwd`; its output in `log`; its wall seconds. A failure stops the benchmark."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    start = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.run([sys.executable, "-m", "tuneforge", *args], cwd=cwd, env=env, stdout=fh,
                              stderr=subprocess.STDOUT, check=False)
    if proc.returncode:
        print(log.read_text()[-3000:])
        raise SystemExit(f"tuneforge {' '.join(args[:2])} failed (exit {proc.returncode}); log: {log}")
    return round(time.perf_counter() - start, 1)


def search(work: Path, pruner: str, args) -> dict:
    """One search; its wall time, trial counts, best and defaults as the report's trials.json holds them."""
    out = work / f"search-{pruner}"
    flags = [x for k, v in SPACE.items() for x in (f"--{k}", v)]
    cmd = ["tune", "base.yaml", "--trials", str(args.trials), "--output", out.name, "--pruner", pruner, "--seed", "0",
           "--parallel", str(args.parallel), "--overwrite", *flags]
    print(f"search ({pruner} pruner, {args.trials} trials) ...", flush=True)
    wall = tuneforge(cmd, work, work / f"{out.name}.log")
    rows = json.loads((out / "report" / "trials.json").read_text())
    done = [r for r in rows if r["state"] == "complete"]
    best = max(done, key=lambda r: (r["value"], -r["number"]))
    defaults = next(r for r in done if r["defaults"])
    counts = {s: sum(r["state"] == s for r in rows) for s in ("complete", "pruned", "fail")}
    print(f"  {wall:.0f} s; {counts}; best trial {best['number']} {best['value']:.4f} vs defaults "
          f"{defaults['value']:.4f}")
    return {"command": "tuneforge " + " ".join(cmd), "wall_seconds": wall, "counts": counts,
            "trial_seconds": round(sum(r["seconds"] or 0 for r in rows), 1),
            "best": {k: best[k] for k in ("number", "value", "values", "seconds")},
            "defaults": {k: defaults[k] for k in ("number", "value", "values", "seconds")},
            "best_yaml": (out / "best.yaml").read_text()}


def retrain(work: Path, config: str, name: str, seed: int) -> dict:
    run = work / "retrain" / f"{name}-seed{seed}"
    wall = tuneforge(["finetune", config, "--output", str(run), "--overwrite", "--set", f"train.seed={seed}"], work,
                     work / "retrain" / f"{name}-seed{seed}.log")
    summary = json.loads((run / "summary.json").read_text())
    return {"dev_accuracy": summary["metrics"]["test"]["accuracy"], "dev_macro_f1": summary["metrics"]["test"]["macro_f1"],
            "validation_accuracy": summary["metrics"]["validation"]["accuracy"], "wall_seconds": wall,
            "steps": summary["steps"]}


def benchmark(args, work: Path) -> dict:
    train, dev = prepare_sst2(args.rows, args.data_seed, work / "data")
    extra = args.set + (SMOKE_SET if args.smoke else [])
    (work / "base.yaml").write_text(yaml.safe_dump(base_config(train, dev, args.model, extra), sort_keys=False))
    searches = {p: search(work, p, args) for p in ("median", "none")}
    (work / "retrain").mkdir(exist_ok=True)
    per_seed = {}
    for seed in args.seed_list:
        pair = {"defaults": retrain(work, "base.yaml", "defaults", seed),
                "best": retrain(work, "search-median/best.yaml", "best", seed)}
        pair["gain"] = round(pair["best"]["dev_accuracy"] - pair["defaults"]["dev_accuracy"], 4)
        per_seed[str(seed)] = pair
        print(f"seed {seed}: dev accuracy defaults {pair['defaults']['dev_accuracy']:.4f}, best "
              f"{pair['best']['dev_accuracy']:.4f} ({pair['gain']:+.4f})")
    gains = [p["gain"] for p in per_seed.values()]
    median, plain = searches["median"]["wall_seconds"], searches["none"]["wall_seconds"]
    return {"searches": searches, "per_seed": per_seed,
            "dev_accuracy_gain_mean": round(statistics.mean(gains), 4), "dev_accuracy_gain_min": min(gains),
            "pruning_wall_ratio": round(median / plain, 3), "pruning_saved_seconds": round(plain - median, 1),
            "base_config": (work / "base.yaml").read_text()}


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    ap.add_argument("--smoke", action="store_true", help="plumbing check: 200 rows, 3 trials, seed 42, 6 steps a run")
    ap.add_argument("--rows", type=int, default=2000, help="SST-2 training rows (the shared seeded sample)")
    ap.add_argument("--data-seed", type=int, default=0, help="seed of the row sample (as sst2_defaults)")
    ap.add_argument("--trials", type=int, default=20, help="trials per search (trial 0 = the defaults)")
    ap.add_argument("--seeds", default="42,43,44", help="training seeds of the best-vs-defaults retraining")
    ap.add_argument("--parallel", type=int, default=1, help="trials at once (each gets cores/parallel threads)")
    ap.add_argument("--model", default="auto", help="base model (auto: TuneForge's choice, minilm-l6 for SST-2)")
    ap.add_argument("--set", action="append", default=[], help="extra KEY=VALUE for the base config")
    ap.add_argument("--work", help="keep the data, searches and runs here (default: a temp folder)")
    add_output_args(ap, RESULTS / "tune_sst2.json")
    args = ap.parse_args()
    if args.smoke:
        for key, value in SMOKE.items():
            setattr(args, key, value)
    args.seed_list = [int(s) for s in args.seeds.split(",") if s.strip()]
    return args


def main() -> None:
    args = parse_args()
    started = guard_output(args.out, args.allow_dirty)
    result = {"benchmark": "tune_sst2", "smoke": args.smoke, "command": invocation("tune_sst2"), "rows": args.rows,
              "dev_rows": 872, "trials": args.trials, "space": SPACE, "seeds": args.seed_list,
              "parallel": args.parallel, "model": args.model, **environment(len(os.sched_getaffinity(0)))}
    run_and_write(args, result, started, benchmark, "bench-tune-sst2-")


if __name__ == "__main__":
    main()

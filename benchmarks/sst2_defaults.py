"""SST-2 with TuneForge's auto defaults (no hyperparameters given), beside TF-IDF + logistic regression.

Usage:  python -m benchmarks.sst2_defaults --train-rows 2000 [--train-rows 0 for all 67,349]
        python -m benchmarks.sst2_defaults --train-rows 8000 --set runtime.precision=bf16 --tag bf16 --label "..."
The dev set (872 rows) is the test set; validation for early stopping is carved from train, so the dev
accuracy is not tuned on. Writes benchmarks/results/sst2_defaults_<rows><tag>.json (or --out).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from benchmarks.common import (
    RESULTS,
    ROOT,
    add_output_args,
    environment,
    guard_output,
    prepare_sst2,
    shown,
    write_result,
)


def tfidf_baseline(train: Path, dev: Path, split_json: Path) -> float:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    tr, dv = pd.read_csv(train, keep_default_na=False), pd.read_csv(dev, keep_default_na=False)
    rows = json.loads(split_json.read_text())["train"]["rows"]  # the same rows TuneForge trained on
    tr = tr.iloc[rows]
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True)
    clf = LogisticRegression(max_iter=2000, C=4.0).fit(vec.fit_transform(tr.text), tr.label.astype(str))
    return float((clf.predict(vec.transform(dv.text)) == dv.label.astype(str)).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--train-rows", type=int, default=2000, help="0 = the full 67,349 rows")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], help="extra --set overrides for tuneforge")
    ap.add_argument("--tag", default="")
    ap.add_argument("--label", help="what this run is, for the README table (default: auto defaults)")
    add_output_args(ap, None)
    args = ap.parse_args()
    name = f"{args.train_rows or 'full'}{args.tag}"
    out = args.out or RESULTS / f"sst2_defaults_{name}.json"
    started = guard_output(out, args.allow_dirty)
    work = ROOT / "runs" / f"bench-sst2-{name}"
    train, dev = prepare_sst2(args.train_rows, args.seed, work / "data")
    cmd = [sys.executable, "-m", "tuneforge", "finetune", "--train", str(train), "--test", str(dev),
           "--output", str(work / "run"), "--overwrite", "--set", "data.validation_fraction=0.05"]
    for s in args.set:
        cmd += ["--set", s]
    t0 = time.time()
    subprocess.run(cmd, check=True)
    wall = time.time() - t0
    summary = json.loads((work / "run" / "summary.json").read_text())
    # The user-facing check: `tuneforge evaluate` on the saved final/ model and the dev file.
    subprocess.run([sys.executable, "-m", "tuneforge", "evaluate", "--model", str(work / "run" / "final"), "--data",
                    str(dev), "--output", str(work / "eval")], check=True, capture_output=True)
    evaluated = json.loads((work / "eval" / "metrics.json").read_text())
    config = (work / "run" / "config.yaml").read_text()
    result = {
        "benchmark": "sst2_defaults", "train_rows": args.train_rows or 67349, "dev_rows": 872,
        "command": " ".join(cmd[1:]), "wall_seconds": round(wall, 1),
        "dev_accuracy": evaluated["accuracy"], "dev_macro_f1": evaluated["macro_f1"],
        "validation_accuracy": summary["metrics"]["validation"]["accuracy"],
        "train_samples_per_s": summary["samples_per_s"], "train_seconds": summary["train_seconds"],
        "steps": summary["steps"], "best_step": summary["best_step"], "stop_reason": summary["stop_reason"],
        "tfidf_lr_dev_accuracy": tfidf_baseline(train, dev, work / "run" / "split.json"),
        "resolved_config": config, "environment": environment(),
    }
    if args.label:
        result["label"] = args.label
    path = write_result(out, result, started, args.allow_dirty)
    print(json.dumps({k: v for k, v in result.items() if k != "resolved_config"}, indent=2))
    print(f"wrote {shown(path)}")


if __name__ == "__main__":
    main()

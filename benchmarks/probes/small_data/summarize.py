"""Summarize the small-data probes (run.sh): per run, validation and test accuracy at every evaluation, and the test
accuracy each checkpoint rule gives: the loop's (first best validation accuracy), lowest validation loss, the last
checkpoint, and the averages of the last k checkpoints. Prints a table; `--json PATH` writes the summary."""
from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path


def summarize(path: Path) -> dict:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    evals = [r for r in rows if "avg" not in r]
    val = [r["val"]["accuracy"] for r in evals]
    test = [r["test"]["accuracy"] for r in evals]
    best = max(range(len(val)), key=lambda i: (val[i], -i))  # the loop keeps the first best
    low = min(range(len(evals)), key=lambda i: evals[i]["val"]["loss"])
    tag, seed = re.match(r"\d+(.+)-seed(\d+)", path.stem).groups()
    return {"variant": tag, "seed": int(seed), "validation_accuracy": val, "test_accuracy": test,
            "selected": {"best_validation_accuracy": test[best], "lowest_validation_loss": test[low],
                         "last": test[-1], **{f"average_last_{r['avg']}": r["test"]["accuracy"]
                                              for r in rows if "avg" in r}},
            "evaluations": len(evals), "best_evaluation": best}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    runs = sorted((summarize(p) for p in args.files), key=lambda r: (r["variant"], r["seed"]))
    by = {}
    for r in runs:
        by.setdefault(r["variant"], []).append(r)
    for variant, rs in by.items():
        picked = [r["selected"]["best_validation_accuracy"] for r in rs]
        print(f"{variant:8s} " + " / ".join(f"{x:.4f}" for x in picked) + f"  mean {statistics.mean(picked):.4f}  "
              f"min {min(picked):.4f}  evaluations {[r['evaluations'] for r in rs]}")
        for rule in rs[0]["selected"]:
            xs = [r["selected"].get(rule) for r in rs]
            if None not in xs and rule != "best_validation_accuracy":
                print(f"         {rule:26s} " + " / ".join(f"{x:.4f}" for x in xs) + f"  mean {statistics.mean(xs):.4f}")
    if args.json:
        args.json.write_text(json.dumps({"runs": runs}, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""Render the README's benchmark table from benchmarks/results/*.json, so the two never drift.

Usage:  python benchmarks/table.py            # print the table
        python benchmarks/table.py --write    # replace the table between the README's bench-table markers
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
START, END = "<!-- bench-table -->", "<!-- /bench-table -->"


def _sst2_rows() -> list[str]:
    rows = []
    files = sorted(RESULTS.glob("sst2_defaults_*.json"), key=lambda p: json.loads(p.read_text())["train_rows"])
    for path in files:
        r = json.loads(path.read_text())
        what = "stock-Trainer-like settings (lr 5e-5, batch 32, 1 epoch)" if "stock" in path.name else "auto defaults, no hyperparameters given"
        what = r.get("label", what)
        rows.append(f"| SST-2, {r['train_rows']:,} train rows, {what} | dev acc **{r['dev_accuracy']:.4f}** "
                    f"(TF-IDF+LR {r['tfidf_lr_dev_accuracy']:.4f}) · {r['steps']} steps, {r['train_samples_per_s']:.0f} "
                    f"train samples/s, {r['wall_seconds'] / 60:.1f} min wall | `{path.name}` |")
    return rows


def _chinese_rows() -> list[str]:
    path = RESULTS / "chinese_vocab.json"
    if not path.is_file():
        return []
    r = json.loads(path.read_text())
    parts = ", ".join(f"{name} {run['test_accuracy']:.3f}" for name, run in r["runs"].items())
    return [f"| Chinese demo rows on the English default model ({r['rows']['test']} test rows) | {parts}; "
            f"TF-IDF char n-grams {r['tfidf_char_lr_test_accuracy']:.3f} | `{path.name}` |"]


def render() -> str:
    lines = [START, "| benchmark | result | file |", "|---|---|---|"] + _sst2_rows() + _chinese_rows() + [END]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    table = render()
    if args.write:
        readme = ROOT / "README.md"
        text = readme.read_text(encoding="utf-8")
        readme.write_text(re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: table, text, flags=re.S),
                          encoding="utf-8")
    print(table)


if __name__ == "__main__":
    main()

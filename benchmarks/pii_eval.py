"""PII redaction quality: per-type precision / recall / F1 on the labelled set, and rows changed on SST-2.

Usage:  python -m benchmarks.pii_eval [--out PATH] [--allow-dirty]
Data: tests/assets/pii_cases.jsonl (positives and hard negatives, see tests/assets/PII_CASES.md); SST-2 train and dev
from /work/shared/data/sst2 when present (a corpus with no personal data: every changed row is a false positive).
A find counts as right when its type and its exact value match a labelled item.
Writes benchmarks/results/pii_redaction.json and prints a table.
"""
from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

from tuneforge.data.pii import redact
from tuneforge.evaluate.pii_scores import labelled_scores

CASES = Path(__file__).resolve().parents[1] / "tests" / "assets" / "pii_cases.jsonl"  # data, not an import




def sst2_changes() -> dict | None:
    from benchmarks.common import SST2
    from tuneforge.data.sources import read_table

    if not (SST2 / "train.tsv").is_file():
        return None

    out = {}
    for name in ("train", "dev"):
        df = read_table(SST2 / f"{name}.tsv")
        texts = df["sentence" if "sentence" in df.columns else "text"].tolist()
        start = time.perf_counter()
        results = [redact(t) for t in texts]
        seconds = time.perf_counter() - start
        changed = [(t, r) for t, (r, _) in zip(texts, results) if r != t]
        counts = sum((c for _, c in results), Counter())
        out[name] = {"rows": len(texts), "rows_changed": len(changed), "counts": dict(counts),
                     "changed_examples": [{"before": a, "after": b} for a, b in changed[:20]],
                     "texts_per_second": round(len(texts) / seconds)}
    return out


def main() -> None:
    from benchmarks.common import RESULTS, add_output_args, guard_output, shown, write_result

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_output_args(ap, RESULTS / "pii_redaction.json")
    args = ap.parse_args()
    started = guard_output(args.out, args.allow_dirty)
    cases = [json.loads(line) for line in CASES.read_text(encoding="utf-8").splitlines() if line.strip()]
    labelled = labelled_scores(cases)
    sst2 = sst2_changes()
    all_ = labelled["per_type"]["ALL"]
    summary = {"micro_precision": all_["precision"], "micro_recall": all_["recall"], "micro_f1": all_["f1"],
               "min_type_precision": min(v["precision"] for k, v in labelled["per_type"].items() if k != "ALL"),
               "min_type_recall": min(v["recall"] for k, v in labelled["per_type"].items() if k != "ALL"),
               "negative_rows_flagged": labelled["negative_rows_flagged"],
               "sst2_rows_changed": None if sst2 is None else {k: v["rows_changed"] for k, v in sst2.items()}}
    results = {"benchmark": "pii_redaction", "summary": summary, "labelled": labelled, "sst2": sst2,
               "note": "The labelled set and the detector were written by the same people: these numbers show the "
                       "rules work as designed on the kinds of cases listed, not how they do on unseen data."}
    out = write_result(args.out, results, started, args.allow_dirty)
    print(f"{'type':<6} {'precision':>9} {'recall':>7} {'F1':>6} {'TP':>4} {'FP':>4} {'FN':>4}")
    for t, v in labelled["per_type"].items():
        print(f"{t:<6} {v['precision']:>9.3f} {v['recall']:>7.3f} {v['f1']:>6.3f} {v['tp']:>4} {v['fp']:>4} {v['fn']:>4}")
    print(f"labelled rows: {labelled['positive_rows']} positive, {labelled['negative_rows']} hard negative "
          f"({labelled['negative_rows_flagged']} flagged)")
    for name, v in (sst2 or {}).items():
        print(f"SST-2 {name}: {v['rows_changed']} of {v['rows']} rows changed ({v['texts_per_second']} texts/s)")
    print(f"wrote {shown(out)}")


if __name__ == "__main__":
    main()

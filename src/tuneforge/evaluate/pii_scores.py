"""How well the personal-data finder does on labelled texts: per-type precision, recall and F1, and hard negatives
flagged. A find is right when its type and its exact value match a labelled item."""
from __future__ import annotations

from collections import Counter

from tuneforge.data.pii import PII_TYPES, find_pii


def _ratio(a: int, b: int) -> float:
    return round(a / b, 4) if b else 1.0


def labelled_scores(cases: list[dict]) -> dict:
    """`cases`: {"text", "pii": [{"type", "value"}, ...]} (an empty list for a negative)."""
    tp, fp, fn = Counter(), Counter(), Counter()
    errors = []
    for case in cases:
        gold = Counter((p["type"], p["value"]) for p in case["pii"])
        pred = Counter((m.type, m.value) for m in find_pii(case["text"]))
        for key in gold | pred:
            hit = min(gold[key], pred[key])
            tp[key[0]] += hit
            fp[key[0]] += pred[key] - hit
            fn[key[0]] += gold[key] - hit
            if hit < max(gold[key], pred[key]):
                errors.append({"text": case["text"], "type": key[0], "value": key[1],
                               "error": "false positive" if pred[key] > gold[key] else "missed"})
    per_type = {}
    for t in [*PII_TYPES, "ALL"]:
        a, b, c = (sum(x.values()) for x in (tp, fp, fn)) if t == "ALL" else (tp[t], fp[t], fn[t])
        p, r = _ratio(a, a + b), _ratio(a, a + c)
        per_type[t] = {"precision": p, "recall": r, "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0,
                       "tp": a, "fp": b, "fn": c}
    negatives = [c for c in cases if not c["pii"]]
    flagged = sum(1 for c in negatives if find_pii(c["text"]))
    return {"per_type": per_type, "rows": len(cases), "positive_rows": len(cases) - len(negatives),
            "negative_rows": len(negatives), "negative_rows_flagged": flagged, "errors": errors}

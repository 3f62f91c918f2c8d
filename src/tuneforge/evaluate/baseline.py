"""The classical baseline beside the transformer: fit TF-IDF + logistic regression on train, score the eval set.

The report shows it next to the fine-tuned model so a user sees what the large model buys for its compute.
"""
from __future__ import annotations

import time

import numpy as np

from tuneforge.model.tfidf import analyzer_name, build_tfidf_classifier

SMALL_GAP_POINTS = 2.0  # below this accuracy gap (in points) the simple model is "nearly as good"


def run_baseline(train_texts: list[str], train_labels: list[int], eval_texts: list[str], eval_labels: list[int],
                 names: tuple[str, ...], seed: int = 0) -> dict:
    """Fit the TF-IDF baseline on train and score it on the eval set (single-label int class ids).

    Returns accuracy, macro_f1, per_class {name: {precision, recall, f1, support}}, confusion_matrix,
    fit_seconds, analyzer, train_rows, eval_rows. Multi-label labels (lists or a multi-hot matrix) give
    {"skipped": True, "reason": ...} instead: the report then says why there is no baseline."""
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        precision_recall_fscore_support,
    )

    if np.asarray(train_labels).ndim > 1 or any(isinstance(x, (list, tuple)) for x in train_labels[:1]):
        return baseline_unavailable("the TF-IDF baseline covers single-label tasks only; this one is multi-label.")
    train_y = np.asarray(train_labels, dtype=np.int64)
    eval_y = np.asarray(eval_labels, dtype=np.int64)
    pipeline = build_tfidf_classifier(list(train_texts), seed=seed)
    start = time.perf_counter()
    if len(np.unique(train_y)) < 2:
        # LogisticRegression refuses one class; predicting it is the honest baseline then.
        fitted, pred = None, np.full(len(eval_y), train_y[0] if len(train_y) else 0)
    else:
        fitted = pipeline.fit(list(train_texts), train_y)
        pred = fitted.predict(list(eval_texts)) if len(eval_texts) else np.zeros(0, dtype=np.int64)
    fit_seconds = time.perf_counter() - start
    labels = list(range(len(names)))
    p, r, f, s = precision_recall_fscore_support(eval_y, pred, labels=labels, zero_division=0)
    return {
        "model": "tfidf-logreg",
        "accuracy": float(accuracy_score(eval_y, pred)) if len(eval_y) else 0.0,
        "macro_f1": float(np.mean(f)),
        "per_class": {name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                             "support": int(s[i])} for i, name in enumerate(names)},
        "confusion_matrix": confusion_matrix(eval_y, pred, labels=labels).astype(int).tolist(),
        "fit_seconds": round(fit_seconds, 3),
        "analyzer": analyzer_name(pipeline),
        "train_rows": len(train_y),
        "eval_rows": len(eval_y),
    }


def baseline_unavailable(reason: str) -> dict:
    """What the report shows when no baseline could run (multi-label, no training texts)."""
    return {"skipped": True, "reason": reason}


def compare_sentence(model_acc: float, baseline_acc: float, model_f1: float | None = None,
                     baseline_f1: float | None = None) -> str:
    """One plain sentence on what the transformer buys over the baseline (accuracy gap in points)."""
    gap = 100.0 * (model_acc - baseline_acc)
    f1_part = ""
    if model_f1 is not None and baseline_f1 is not None:
        f1_part = f" (macro F1 {100.0 * (model_f1 - baseline_f1):+.1f} points)"
    if gap < -SMALL_GAP_POINTS / 2:
        return (f"The TF-IDF baseline beats the transformer by {-gap:.1f} accuracy points{f1_part}: "
                "the large model buys nothing on this task as trained.")
    if gap < SMALL_GAP_POINTS:
        return (f"The gap is only {gap:+.1f} accuracy points{f1_part}: the simple model is nearly as good here, "
                "and the large model buys little on this task.")
    return f"The transformer gains {gap:.1f} accuracy points over the TF-IDF baseline{f1_part}."

"""`tuneforge baseline`: the TF-IDF + logistic regression baseline alone, on the exact split a fine-tune would use.

The splits come from `load_splits` with the same data config, so a carved validation/test split holds the same rows
as `tuneforge finetune` with that config and `data.split_seed` (`split.json` is written in the same format to show it).
"""
from __future__ import annotations

import json
from pathlib import Path

from tuneforge.config import DataConfig
from tuneforge.data.labels import LabelSpace
from tuneforge.data.splits import load_splits, split_record
from tuneforge.errors import UserError
from tuneforge.evaluate.baseline import run_baseline
from tuneforge.model.artifact import atomic_write_text

EVAL_SPLITS = ("validation", "test")


def baseline(data: DataConfig, output: str | Path, seed: int = 0) -> dict:
    """Fit TF-IDF + LR on train, score validation and test (when present); write metrics.json, split.json and
    baseline.md into `output`. Returns {output, metrics: {split: scores}, primary, analyzer, labels, files}."""
    splits = load_splits(data)
    labels = LabelSpace.from_labels(splits["train"].labels, data.multi_label)
    if labels.multi_label:
        raise UserError(f"{data.train}: column '{data.label_column}' holds multi-label rows (lists or "
                        "--label-separator); `tuneforge baseline` is single-label only for now.")
    train_y = labels.encode(splits["train"].labels, splits["train"].source).tolist()
    metrics = {}
    for name in EVAL_SPLITS:
        if name in splits:
            # The fit is deterministic (seeded, same rows), so each split scores the same model; it takes seconds.
            s = splits[name]
            eval_y = labels.encode(s.labels, s.source).tolist()
            metrics[name] = run_baseline(splits["train"].texts, train_y, s.texts, eval_y, labels.names, seed=seed)
    primary = "test" if "test" in metrics else "validation"
    record = {"model": "tfidf-logreg", "analyzer": metrics[primary]["analyzer"], "labels": list(labels.names),
              "primary": primary, "data": _data_record(data, splits), "metrics": metrics}
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    files = {"metrics": out / "metrics.json", "split": out / "split.json", "report": out / "baseline.md"}
    atomic_write_text(files["metrics"], json.dumps(record, indent=2, ensure_ascii=False))
    atomic_write_text(files["split"], json.dumps(split_record(splits)))
    atomic_write_text(files["report"], _markdown(record))
    return {"output": str(out), "metrics": metrics, "primary": primary, "analyzer": record["analyzer"],
            "labels": labels.names, "files": {k: str(v) for k, v in files.items()}}


def _data_record(data: DataConfig, splits: dict) -> dict:
    """Where each split came from, so the numbers can be matched to a fine-tune on the same data config."""
    return {"text_column": data.text_column, "label_column": data.label_column, "split_seed": data.split_seed,
            "validation_fraction": data.validation_fraction, "test_fraction": data.test_fraction,
            "splits": {name: {"source": s.source, "rows": len(s.texts)} for name, s in splits.items()}}


def _markdown(record: dict) -> str:
    metrics, primary = record["metrics"], record["primary"]
    lines = ["# TuneForge baseline — TF-IDF + logistic regression", "",
             (f"Analyzer: {record['analyzer']}. Labels: {', '.join(record['labels'])}. Split seed "
              f"{record['data']['split_seed']} (the same split a fine-tune with this data config uses)."), "",
             "| split | source | accuracy | macro F1 | rows | train rows | fit seconds |",
             "|---|---|---:|---:|---:|---:|---:|"]
    sources = record["data"]["splits"]
    for name, m in metrics.items():
        lines.append(f"| {name} | {sources[name]['source']} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | "
                     f"{m['eval_rows']} | {m['train_rows']} | {m['fit_seconds']:.2f} |")
    lines += ["", f"Per class on {primary}:", "", "| class | precision | recall | F1 | support |",
              "|---|---:|---:|---:|---:|"]
    for cls, c in metrics[primary]["per_class"].items():
        lines.append(f"| {cls} | {c['precision']:.4f} | {c['recall']:.4f} | {c['f1']:.4f} | {c['support']} |")
    lines += ["", (f"Confusion matrix on {primary} (rows: true, columns: predicted, order as above): "
                   f"`{metrics[primary]['confusion_matrix']}`"), ""]
    return "\n".join(lines)

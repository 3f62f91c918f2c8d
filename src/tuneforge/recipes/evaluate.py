"""Evaluate a fine-tuned model on a labelled file: metrics.json, a report with plots (95% CI, calibration at the
stored temperature, worst errors, optionally the TF-IDF baseline) and a model card README.md."""
from __future__ import annotations

import json
from pathlib import Path

from tuneforge.config import DataConfig
from tuneforge.data.encode import encode_texts
from tuneforge.data.labels import LabelSpace
from tuneforge.data.sources import file_sha256
from tuneforge.data.splits import load_labelled
from tuneforge.evaluate.analysis import analyse
from tuneforge.evaluate.baseline import baseline_unavailable, run_baseline
from tuneforge.evaluate.model_card import model_card
from tuneforge.evaluate.report import write_report
from tuneforge.evaluate.stream import evaluate_classifier
from tuneforge.model.artifact import atomic_write_text
from tuneforge.model.first_token import use_first_token
from tuneforge.model.manifest import read_manifest
from tuneforge.model.build import load_trained
from tuneforge.model.resolve import resolve_model


def evaluate(model_path: str, data: str, output: str, text_column: str = "text", label_column: str = "label",
             batch_size: int = 128, label_separator: str | None = None, baseline_train: str | None = None,
             bootstrap_samples: int = 1000) -> dict:
    model, tokenizer = load_trained(model_path)
    use_first_token(model)  # exact: the head reads the first token only
    folder = Path(resolve_model(model_path))
    manifest = read_manifest(folder)
    labels = LabelSpace.from_model_config(model.config)
    cfg = DataConfig(text_column=text_column, label_column=label_column, label_separator=label_separator,
                     max_length=manifest.max_length)
    split = load_labelled(data, cfg, "evaluation")
    encoded = encode_texts(tokenizer, split.texts, cfg.max_length, labels.encode(split.labels, data))
    metrics, rows = evaluate_classifier(model, encoded, labels.names, labels.multi_label, batch_size=batch_size,
                                        pad_id=tokenizer.pad_token_id or 0, details=True)
    stored = getattr(model.config, "tuneforge_temperature", None)
    analysis = analyse(rows, split.texts, labels.names, temperature=float(stored) if stored else 1.0,
                       fitted_on="stored" if stored else "none", bootstrap_samples=bootstrap_samples,
                       row_numbers=split.rows, baseline=_baseline(baseline_train, cfg, split, labels))
    log = folder / "metrics.jsonl"
    history = [json.loads(x) for x in log.read_text(encoding="utf-8").splitlines() if x.strip()] if log.is_file() else []
    out = Path(output)
    train_seconds = manifest.training.get("train_seconds")
    report = write_report(out, metrics, labels.names, history, title=f"TuneForge evaluation — {Path(data).name}",
                          ci=analysis["ci"], calibration=analysis["calibration"], errors=analysis["errors"],
                          baseline=analysis["baseline"], train_seconds=train_seconds, split=Path(data).name)
    config_file = folder / "training_config.yaml"
    card_manifest = manifest.model_copy(update={
        "labels": list(labels.names), "multi_label": labels.multi_label,
        "data": {**manifest.data, "evaluation": {"source": data, "rows": len(split.texts),
                                                 "sha256": file_sha256(data) if Path(data).is_file() else None}}})
    card = model_card(card_manifest, metrics, split="evaluation", ci=analysis["ci"],
                      calibration=analysis["calibration"], baseline=analysis["baseline"], train_seconds=train_seconds,
                      config_yaml=config_file.read_text(encoding="utf-8") if config_file.is_file() else None)
    atomic_write_text(out / "README.md", card)
    return {"metrics": metrics, "report": str(report), "metrics_file": str(out / "metrics.json"),
            "model_card": str(out / "README.md"), "calibration": analysis["calibration"] and {
                k: analysis["calibration"][k] for k in ("temperature", "ece_before", "ece_after")}}


def _baseline(train: str | None, cfg: DataConfig, split, labels: LabelSpace) -> dict | None:
    """The TF-IDF baseline fitted on `train` (same columns as the evaluation file), scored on the evaluation rows."""
    if not train:
        return None
    if labels.multi_label:
        return baseline_unavailable("the TF-IDF baseline covers single-label tasks only; this one is multi-label.")
    fit_on = load_labelled(train, cfg, "baseline-train")
    return run_baseline(fit_on.texts, labels.encode(fit_on.labels, train).tolist(), split.texts,
                        labels.encode(split.labels, split.source).tolist(), labels.names)

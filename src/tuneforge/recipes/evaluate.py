"""Evaluate a fine-tuned model on a labelled file: metrics.json and a report with plots."""
from __future__ import annotations

import json
from pathlib import Path

from tuneforge.config import DataConfig
from tuneforge.data.encode import encode_texts
from tuneforge.data.labels import LabelSpace
from tuneforge.data.splits import load_labelled
from tuneforge.evaluate.report import write_report
from tuneforge.evaluate.stream import evaluate_classifier
from tuneforge.model.artifact import read_manifest
from tuneforge.model.build import load_trained
from tuneforge.model.resolve import resolve_model


def evaluate(model_path: str, data: str, output: str, text_column: str = "text", label_column: str = "label",
             batch_size: int = 128, label_separator: str | None = None) -> dict:
    model, tokenizer = load_trained(model_path)
    folder = resolve_model(model_path)
    manifest = read_manifest(folder)
    labels = LabelSpace.from_model_config(model.config)
    cfg = DataConfig(text_column=text_column, label_column=label_column, label_separator=label_separator,
                     max_length=manifest.get("max_length", 128))
    split = load_labelled(data, cfg, "evaluation")
    encoded = encode_texts(tokenizer, split.texts, cfg.max_length, labels.encode(split.labels, data))
    metrics = evaluate_classifier(model, encoded, labels.names, labels.multi_label, batch_size=batch_size,
                                  pad_id=tokenizer.pad_token_id or 0)
    log = Path(folder) / "metrics.jsonl"
    history = [json.loads(x) for x in log.read_text(encoding="utf-8").splitlines() if x.strip()] if log.is_file() else []
    report = write_report(Path(output), metrics, labels.names, history, title=f"TuneForge evaluation — {Path(data).name}")
    return {"metrics": metrics, "report": str(report), "metrics_file": str(Path(output) / "metrics.json")}

"""What a classification run leaves behind: the final evaluation (fp32, temperature fitted on validation), the
analysis of the report split, the manifest, the model card, final/ and the report."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tuneforge.data.labels import LabelSpace
from tuneforge.data.sources import file_sha256
from tuneforge.evaluate.analysis import analyse, baseline_scalars, calibration_scalars, label_counts
from tuneforge.evaluate.baseline import baseline_unavailable, run_baseline
from tuneforge.evaluate.calibration import fit_temperature
from tuneforge.evaluate.model_card import model_card
from tuneforge.evaluate.report import write_report
from tuneforge.model.manifest import Manifest, RunSummary, package_versions


@dataclass
class FinalEvaluation:
    metrics: dict  # split → metrics
    rows: dict  # split → RowOutputs (per-row logits, predictions, labels)
    temperature: float | None  # fitted on validation; None when not fitted...
    why_not: str | None  # ...and why


def final_evaluation(cfg, evaluate, model, labels: LabelSpace, encoded: dict) -> FinalEvaluation:
    """Metrics and per-row outputs on validation and test, in fp32, and the temperature fitted on validation (also
    set on `model.config`, the unwrapped model, where predict() reads it)."""
    metrics, rows = {}, {}
    for name in ("validation", "test"):
        if name in encoded:
            # fp32 (no autocast; `model` comes without Accelerate's autocast wrapper), as `predict`, `evaluate`
            # and `tuneforge.load` run the saved weights: the reported numbers reproduce.
            metrics[name], rows[name] = evaluate(model, name, details=True, autocast=None)
    val = rows.get("validation")
    temperature, why = None, "eval.calibrate is off"
    if hasattr(model.config, "tuneforge_temperature"):
        del model.config.tuneforge_temperature  # one inherited from the base model does not fit these weights
    if cfg.eval.calibrate and not labels.multi_label and val is not None:
        if len(val) and (val.pred != val.true).any():
            temperature, why = fit_temperature(val.logits, val.true), None
            model.config.tuneforge_temperature = temperature  # saved in config.json; predict() divides logits by it
        else:
            # Without a single mistake the NLL falls forever as T → 0: any fitted T would be the search bound.
            why = "the validation set has no mistakes, so a temperature cannot be fitted on it"
    return FinalEvaluation(metrics, rows, temperature, why)


def _analysis(cfg, splits, labels: LabelSpace, split: str, final: FinalEvaluation) -> dict:
    """Report sections for the report split: CI, calibration, worst errors, baseline."""
    baseline = None
    if cfg.eval.baseline and labels.multi_label:
        baseline = baseline_unavailable("the TF-IDF baseline covers single-label tasks only; this one is multi-label.")
    elif cfg.eval.baseline:
        baseline = run_baseline(splits["train"].texts, labels.encode(splits["train"].labels).tolist(),
                                splits[split].texts, labels.encode(splits[split].labels).tolist(), labels.names,
                                seed=cfg.train.seed)
    fitted_on = "validation" if split != "validation" else "validation (the same rows it is measured on)"
    return analyse(final.rows.get(split), splits[split].texts, labels.names, temperature=final.temperature or 1.0,
                   fitted_on=fitted_on if final.temperature else "none", note=final.why_not,
                   bootstrap_samples=cfg.eval.bootstrap_samples, seed=cfg.train.seed,
                   row_numbers=splits[split].rows, baseline=baseline)


def _notes(splits, summary: RunSummary) -> list[str]:
    notes = [summary.warning] if summary.warning else []
    if summary.vocab_added:
        notes.append(f"{summary.vocab_added} tokens were added to the vocabulary for this data.")
    check = summary.data_check
    if check and any(check.values()):
        notes.append(f"Data check: {check['duplicates']} duplicate rows, {check['conflicts']} texts with conflicting "
                     f"labels, {check['leakage']} validation/test texts also in train. Run `tuneforge data check` for "
                     "the rows, near duplicates and suspect labels.")
    for name, s in splits.items():
        if s.pii:
            found = ", ".join(f"{k} {v}" for k, v in s.pii.items() if v) or "none found"
            notes.append(f"Personal data redacted in {name} ({s.source}): {found}.")
    return notes


def _manifest(session, splits, labels: LabelSpace, summary: RunSummary, checksums: list[float]) -> Manifest:
    cfg = session.cfg
    calibration = summary.calibration
    return session.manifest(
        "classification", labels=list(labels.names), multi_label=labels.multi_label, max_length=cfg.data.max_length,
        base_model=cfg.model.name,
        data={n: {"source": s.source, "rows": len(s.texts),
                  "sha256": file_sha256(s.source) if Path(s.source).exists() else None} for n, s in splits.items()},
        label_counts={"train": label_counts(labels.names, labels.encode(splits["train"].labels))},
        metrics={split: {k: v for k, v in m.items() if k != "per_class"} for split, m in summary.metrics.items()},
        training={"steps": summary.steps, "best_step": summary.best_step, "stop_reason": summary.stop_reason,
                  "train_seconds": summary.train_seconds, "samples_per_s": summary.samples_per_s},
        coverage=summary.coverage, vocab_added=summary.vocab_added, rank_weight_checksums=checksums,
        calibration=calibration, ci=summary.ci, baseline=summary.baseline,
        # the ONNX predictor reads it from here (PyTorch from config.json)
        temperature=calibration["temperature"] if calibration and calibration["fitted_on"] != "none" else None)


def write_outputs(session, model, tokenizer, splits, labels: LabelSpace, summary: RunSummary,
                  final: FinalEvaluation, checksums: list[float]) -> RunSummary:
    """final/ (model, manifest, model card) and report/ for the report split (test, else validation); returns the
    summary with the analysis and the report's path."""
    cfg = session.cfg
    split = "test" if "test" in summary.metrics else "validation"
    analysis = _analysis(cfg, splits, labels, split, final)
    summary = summary.model_copy(update={"calibration": calibration_scalars(analysis["calibration"]),
                                         "baseline": baseline_scalars(analysis["baseline"]), "ci": analysis["ci"],
                                         "report_split": split})
    manifest = _manifest(session, splits, labels, summary, checksums)
    notes, metrics = _notes(splits, summary), summary.metrics[split]
    card = model_card(manifest.model_copy(update={"versions": package_versions()}), metrics, split=split,
                      config_yaml=session.config_yaml(), ci=analysis["ci"], calibration=analysis["calibration"],
                      baseline=analysis["baseline"], train_seconds=summary.train_seconds, notes=notes)
    session.save_final(model, tokenizer, manifest, extra_files={"README.md": card})
    report = write_report(session.run_dir / "report", metrics, labels.names, session.history(),
                          title=f"TuneForge fine-tune — {split} set", notes=notes, ci=analysis["ci"],
                          calibration=analysis["calibration"], errors=analysis["errors"],
                          baseline=analysis["baseline"], train_seconds=summary.train_seconds,
                          split=f"the {split} set")
    return summary.model_copy(update={"report": str(report)})

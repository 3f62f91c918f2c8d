"""The final analysis of one evaluated split: bootstrap intervals, calibration, worst errors and the baseline.

Shared by `tuneforge finetune` (temperature fitted on validation) and `tuneforge evaluate` (temperature read
from the model), so both write the same report sections.
"""
from __future__ import annotations

import numpy as np

from tuneforge.evaluate.calibration import (
    bootstrap_ci,
    calibration_summary,
    softmax,
    worst_errors,
)
from tuneforge.evaluate.metrics import RowOutputs

WORST_ERRORS = 10


def analyse(rows: RowOutputs | None, texts: list[str], names: tuple[str, ...], *, temperature: float | None,
            fitted_on: str, bootstrap_samples: int, seed: int = 0, row_numbers: list[int] | None = None,
            baseline: dict | None = None, note: str | None = None) -> dict:
    """{"ci", "calibration", "errors", "baseline"} for the report (None where it does not apply).

    `rows` is None for multi-label: intervals, calibration and worst errors are single-label only here.
    `temperature` None leaves calibration out; `fitted_on="none"` with T = 1 reports the uncalibrated ECE, with
    `note` saying why there is no temperature. `row_numbers` maps split rows to source-file rows."""
    out: dict = {"ci": None, "calibration": None, "errors": None, "baseline": baseline}
    if rows is None:
        return out
    out["ci"] = bootstrap_ci(rows.true, rows.pred, names, bootstrap_samples, seed) or None
    confidence = rows.confidence
    if temperature is not None:
        out["calibration"] = {**calibration_summary(rows.logits, rows.true, temperature), "fitted_on": fitted_on}
        if note:
            out["calibration"]["note"] = note
        confidence = softmax(rows.logits, temperature).max(-1)  # what predict() will report
    errors = worst_errors(rows.true, rows.pred, confidence, texts, names, WORST_ERRORS)
    if row_numbers:
        for e in errors:  # the row in the user's file, not in the (possibly carved) split
            e["row"] = int(row_numbers[e["row"]])
    out["errors"] = errors
    return out


def calibration_scalars(calibration: dict | None) -> dict | None:
    """The calibration numbers worth keeping in summary.json and the manifest (no per-bin data)."""
    if not calibration:
        return None
    keys = ("temperature", "ece_before", "ece_after", "nll_before", "nll_after", "fitted_on", "rows", "note")
    return {k: v for k, v in calibration.items() if k in keys}


def baseline_scalars(baseline: dict | None) -> dict | None:
    if not baseline:
        return None
    return {k: v for k, v in baseline.items() if k not in ("per_class", "confusion_matrix")}


def label_counts(names: tuple[str, ...], encoded: np.ndarray) -> dict[str, int]:
    """Rows per label (multi-hot columns summed for multi-label), for the manifest and the model card."""
    counts = encoded.sum(0) if encoded.ndim > 1 else np.bincount(encoded, minlength=len(names))
    return {n: int(c) for n, c in zip(names, counts)}

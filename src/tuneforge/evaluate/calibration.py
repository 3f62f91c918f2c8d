"""Calibration and uncertainty of a single-label classifier: expected calibration error, reliability-diagram data,
temperature scaling (Guo et al. 2017), bootstrap confidence intervals, and the highest-confidence mistakes.

Pure numpy (scipy for the 1-D temperature search) on the per-row record of the final evaluation.
"""
from __future__ import annotations

import numpy as np

ECE_BINS = 15  # equal-width bins on the top-label confidence, as in Guo et al. 2017
T_MIN, T_MAX = 0.05, 20.0


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = np.exp(z - z.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def _bins(confidence: np.ndarray, bins: int) -> np.ndarray:
    # Bin b holds (b/B, (b+1)/B]; a confidence of exactly 0 goes to the first bin.
    return np.clip(np.ceil(np.asarray(confidence, dtype=np.float64) * bins).astype(np.int64) - 1, 0, bins - 1)


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> dict:
    """Per bin: rows, mean confidence and accuracy (None for empty bins), plus the bin edges."""
    b = _bins(confidence, bins)
    count = np.bincount(b, minlength=bins)
    conf_sum = np.bincount(b, weights=np.asarray(confidence, dtype=np.float64), minlength=bins)
    acc_sum = np.bincount(b, weights=np.asarray(correct, dtype=np.float64), minlength=bins)
    safe = np.maximum(count, 1)
    return {"edges": np.linspace(0, 1, bins + 1).round(6).tolist(), "count": count.tolist(),
            "confidence": [float(c) if n else None for c, n in zip(conf_sum / safe, count)],
            "accuracy": [float(a) if n else None for a, n in zip(acc_sum / safe, count)]}


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE: the row-weighted mean |accuracy − confidence| over equal-width confidence bins."""
    n = len(confidence)
    if n == 0:
        return 0.0
    b = _bins(confidence, bins)
    gap = np.bincount(b, weights=np.asarray(correct, dtype=np.float64) - np.asarray(confidence, dtype=np.float64),
                      minlength=bins)
    return float(np.abs(gap).sum() / n)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the labels under softmax(logits / T)."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    m = z.max(-1, keepdims=True)
    log_norm = (m + np.log(np.exp(z - m).sum(-1, keepdims=True)))[:, 0]
    return float(np.mean(log_norm - z[np.arange(len(z)), labels])) if len(z) else 0.0


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T in [0.05, 20] that minimises the NLL of softmax(logits / T) (searched over log T).

    Argmax, and so accuracy, does not change with T; only the confidences do."""
    from scipy.optimize import minimize_scalar

    logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        return 1.0
    result = minimize_scalar(lambda log_t: nll(logits, labels, float(np.exp(log_t))),
                             bounds=(np.log(T_MIN), np.log(T_MAX)), method="bounded", options={"xatol": 1e-4})
    return float(np.clip(np.exp(result.x), T_MIN, T_MAX))


def calibration_summary(logits: np.ndarray, labels: np.ndarray, temperature: float, bins: int = ECE_BINS) -> dict:
    """ECE, NLL and reliability data before (T = 1) and after temperature scaling, on one set of rows."""
    labels = np.asarray(labels, dtype=np.int64)
    out: dict = {"temperature": float(temperature), "rows": len(labels), "bins": bins}
    for key, t in (("before", 1.0), ("after", float(temperature))):
        probs = softmax(logits, t)
        conf, correct = probs.max(-1), probs.argmax(-1) == labels
        out[f"ece_{key}"] = expected_calibration_error(conf, correct, bins)
        out[f"nll_{key}"] = nll(logits, labels, t)
        out[f"reliability_{key}"] = reliability(conf, correct, bins)
    return out


def _macro_f1(cm: np.ndarray) -> np.ndarray:
    """Macro F1 of a stack of confusion matrices (..., C, C); F1 = 2TP / (2TP + FP + FN), 0 when undefined."""
    tp = np.diagonal(cm, axis1=-2, axis2=-1).astype(np.float64)
    denom = cm.sum(-1) + cm.sum(-2)  # (TP + FN) + (TP + FP)
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return f1.mean(-1)


def bootstrap_ci(true: np.ndarray, pred: np.ndarray, names: tuple[str, ...], samples: int = 1000, seed: int = 0,
                 level: float = 0.95, chunk: int = 100) -> dict[str, list[float]]:
    """Percentile bootstrap intervals {accuracy: [lo, hi], macro_f1: [lo, hi]} from resampled rows.

    Vectorised: each chunk of resamples becomes one bincount over (resample, true, pred) cells."""
    true, pred = np.asarray(true, dtype=np.int64), np.asarray(pred, dtype=np.int64)
    n, c = len(true), len(names)
    if samples <= 0 or n == 0:
        return {}
    rng = np.random.default_rng(seed)
    cell = true * c + pred
    acc, f1 = np.empty(samples), np.empty(samples)
    for start in range(0, samples, chunk):
        b = min(chunk, samples - start)
        idx = rng.integers(0, n, size=(b, n))
        flat = (np.arange(b)[:, None] * (c * c) + cell[idx]).ravel()
        cms = np.bincount(flat, minlength=b * c * c).reshape(b, c, c)
        acc[start:start + b] = np.trace(cms, axis1=1, axis2=2) / n
        f1[start:start + b] = _macro_f1(cms)
    tail = 100 * (1 - level) / 2
    return {name: [float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail))]
            for name, v in (("accuracy", acc), ("macro_f1", f1))}


def worst_errors(true: np.ndarray, pred: np.ndarray, confidence: np.ndarray, texts: list[str],
                 names: tuple[str, ...], k: int = 10) -> list[dict]:
    """The k mistakes the model was most sure of: often label noise, or a pattern the model learned wrong."""
    true, pred, confidence = np.asarray(true), np.asarray(pred), np.asarray(confidence, dtype=np.float64)
    wrong = np.flatnonzero(true != pred)
    top = wrong[np.argsort(-confidence[wrong], kind="stable")[:k]]
    return [{"row": int(i), "text": texts[i], "true": names[int(true[i])], "predicted": names[int(pred[i])],
             "confidence": round(float(confidence[i]), 4)} for i in top]

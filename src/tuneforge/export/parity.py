"""Parity of exported graphs with the PyTorch model on real texts: output differences, label agreement, accuracy.

Limits; a graph outside them fails the export:
- an fp32 graph: max |PyTorch − ONNX| over every (unpadded) output value ≤ tolerance (default 1e-3; measured ~5e-6);
- an int8 classifier: label agreement with PyTorch ≥ MIN_AGREEMENT and, with labelled check data, an accuracy
  drop ≤ max_accuracy_drop points (default 0.5);
- an int8 encoder: cosine(PyTorch, ONNX) of every text's mean-pooled embedding ≥ MIN_COSINE.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from tuneforge.data.encode import Encoded, collate, sorted_batches

Forward = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (input_ids, attention_mask) → logits or hidden

DEFAULT_TOLERANCE = 1e-3
DEFAULT_MAX_ACCURACY_DROP = 0.5  # accuracy points
# Measured with MiniLM-L6, int8 per channel: 98.0-98.7% agreement on SST-2 dev (accuracy unchanged), 100% on
# the demo reviews; per tensor 96.8%. A broken graph lands far lower; 95% leaves room for models whose check
# texts sit near the decision boundary (2 flips in 40 texts is 95%).
MIN_AGREEMENT = 0.95
# Measured with MiniLM-L6, int8 per channel, mean pooling: cosine min 0.979 / mean 0.991 on the demo reviews,
# min 0.969 / mean 0.992 on SST-2 dev (872 sentences).
MIN_COSINE = 0.95


def _pooled(out: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Logits pass through; hidden states become masked means (what `embed(pooling="mean")` returns)."""
    if out.ndim == 2:
        return out
    m = mask[..., None].astype(out.dtype)
    return (out * m).sum(1) / np.maximum(m.sum(1), 1)


def run_graphs(reference: Forward, candidates: dict[str, Forward], data: Encoded, pad_id: int,
               batch_size: int = 32) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, float]]:
    """Every text through every graph, batch by batch. Returns per-text rows (logits or mean-pooled vectors)
    in input order, and each candidate's max |difference| from the reference over unpadded positions."""
    ref_rows, rows = [], {name: [] for name in candidates}
    max_diff = dict.fromkeys(candidates, 0.0)
    order = []
    for index in sorted_batches(data.lengths, batch_size):
        batch = collate(Encoded(data.input_ids), index, pad_id)
        ids, mask = batch["input_ids"].numpy(), batch["attention_mask"].numpy()
        ref = reference(ids, mask)
        keep = mask.astype(bool) if ref.ndim == 3 else np.ones(len(ref), dtype=bool)
        for name, forward in candidates.items():
            out = forward(ids, mask)
            max_diff[name] = max(max_diff[name], float(np.abs(out - ref)[keep].max()))
            rows[name].append(_pooled(out, mask))
        ref_rows.append(_pooled(ref, mask))
        order.append(index)
    inverse = np.argsort(np.concatenate(order))
    return (np.concatenate(ref_rows)[inverse], {k: np.concatenate(v)[inverse] for k, v in rows.items()}, max_diff)


def _decisions(logits: np.ndarray, multi_label: bool) -> np.ndarray:
    return logits >= 0 if multi_label else logits.argmax(-1)  # sigmoid ≥ 0.5 ⇔ logit ≥ 0


def _accuracy(decisions: np.ndarray, labels: np.ndarray, multi_label: bool) -> float:
    if multi_label:  # exact match, as `tuneforge evaluate` reports for multi-label
        return float((decisions == (labels > 0.5)).all(1).mean())
    return float((decisions == labels).mean())


def classifier_parity(ref: np.ndarray, out: np.ndarray, max_diff: float, multi_label: bool,
                      labels: np.ndarray | None) -> dict:
    ref_dec, out_dec = _decisions(ref, multi_label), _decisions(out, multi_label)
    same = (ref_dec == out_dec).all(1) if multi_label else ref_dec == out_dec
    result = {"max_abs_diff": max_diff, "label_agreement": float(same.mean())}
    if labels is not None:
        ref_acc, acc = _accuracy(ref_dec, labels, multi_label), _accuracy(out_dec, labels, multi_label)
        result.update(accuracy=acc, pytorch_accuracy=ref_acc, accuracy_drop_points=(ref_acc - acc) * 100)
    return result


def encoder_parity(ref: np.ndarray, out: np.ndarray, max_diff: float) -> dict:
    cos = (ref * out).sum(1) / np.maximum(np.linalg.norm(ref, axis=1) * np.linalg.norm(out, axis=1), 1e-12)
    return {"max_abs_diff": max_diff, "min_cosine": float(cos.min()), "mean_cosine": float(cos.mean())}


def measure(reference: Forward, candidates: dict[str, Forward], data: Encoded, pad_id: int, *, classifier: bool,
            multi_label: bool = False, labels: np.ndarray | None = None) -> dict[str, dict]:
    """Parity numbers per candidate graph (keyed like `candidates`: "fp32", "int8")."""
    ref, rows, max_diff = run_graphs(reference, candidates, data, pad_id)
    if classifier:
        return {k: classifier_parity(ref, rows[k], max_diff[k], multi_label, labels) for k in candidates}
    return {k: encoder_parity(ref, rows[k], max_diff[k]) for k in candidates}


def violations(results: dict[str, dict], tolerance: float = DEFAULT_TOLERANCE,
               max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP) -> list[str]:
    """Human-readable reasons why a graph is out of its limits; empty when every graph passes."""
    problems = []
    for name, r in results.items():
        if name != "int8":
            if not r["max_abs_diff"] <= tolerance:  # `not <=` also catches NaN
                problems.append(f"{name} outputs differ from PyTorch by up to {r['max_abs_diff']:.3g} "
                                f"(limit --tolerance {tolerance:g})")
            continue
        if r.get("accuracy_drop_points") is not None and not r["accuracy_drop_points"] <= max_accuracy_drop:
            problems.append(f"int8 accuracy {r['accuracy']:.2%} is {r['accuracy_drop_points']:.2f} points below "
                            f"PyTorch's {r['pytorch_accuracy']:.2%} (limit --max-accuracy-drop {max_accuracy_drop:g})")
        if "label_agreement" in r and not r["label_agreement"] >= MIN_AGREEMENT:
            problems.append(f"int8 labels agree with PyTorch on {r['label_agreement']:.1%} of texts "
                            f"(limit {MIN_AGREEMENT:.0%})")
        if "min_cosine" in r and not r["min_cosine"] >= MIN_COSINE:
            problems.append(f"int8 embeddings reach cosine {r['min_cosine']:.3f} with PyTorch's (limit {MIN_COSINE})")
    return problems

"""Metrics from accumulated counts. Evaluation never holds all logits: memory stays flat as data grows.

Single-label keeps a C×C confusion matrix; multi-label keeps per-class TP/FP/FN/TN. scikit-learn computes
the scores from the counts (each confusion cell becomes one weighted sample). `RowOutputs` is the opt-in
per-row record (label, prediction, confidence, C logits as float32) that the final report needs for
calibration, bootstrap intervals and worst errors: N×C floats, never the model's hidden states.
"""
from __future__ import annotations

import numpy as np
import torch


class Counts:
    def __init__(self, num_labels: int, multi_label: bool):
        self.multi_label = multi_label
        self.matrix = torch.zeros((num_labels, 4) if multi_label else (num_labels, num_labels), dtype=torch.float64)
        self.loss_sum = torch.zeros((), dtype=torch.float64)
        self.n = torch.zeros((), dtype=torch.float64)
        self.exact = torch.zeros((), dtype=torch.float64)

    def add(self, logits: torch.Tensor, labels: torch.Tensor, loss_sum: torch.Tensor) -> None:
        logits, labels = logits.detach().float().cpu(), labels.detach().cpu()
        self.loss_sum += loss_sum.detach().double().cpu()
        self.n += len(labels)
        if self.multi_label:
            pred, true = logits > 0, labels > 0.5
            self.matrix[:, 0] += (pred & true).sum(0)  # tp
            self.matrix[:, 1] += (pred & ~true).sum(0)  # fp
            self.matrix[:, 2] += (~pred & true).sum(0)  # fn
            self.matrix[:, 3] += (~pred & ~true).sum(0)  # tn
            self.exact += (pred == true).all(1).sum()
        else:
            c = self.matrix.shape[0]
            flat = labels * c + logits.argmax(-1)
            self.matrix += torch.bincount(flat, minlength=c * c).reshape(c, c).double()

    def tensors(self) -> list[torch.Tensor]:
        return [self.matrix, self.loss_sum, self.n, self.exact]

    def load(self, tensors: list[torch.Tensor]) -> None:
        self.matrix, self.loss_sum, self.n, self.exact = (t.detach().cpu().double() for t in tensors)


class RowOutputs:
    """Per-row outputs of a single-label evaluation in preallocated arrays indexed by row (input order)."""

    def __init__(self, rows: int, num_labels: int):
        self.true = np.zeros(rows, dtype=np.int64)
        self.pred = np.zeros(rows, dtype=np.int64)
        self.confidence = np.zeros(rows, dtype=np.float32)  # top-label softmax probability at temperature 1
        self.logits = np.zeros((rows, num_labels), dtype=np.float32)

    def __len__(self) -> int:
        return len(self.true)

    def add(self, index: np.ndarray, logits: torch.Tensor, labels: torch.Tensor) -> None:
        logits = logits.detach().float().cpu()
        probs = torch.softmax(logits, -1)
        conf, pred = probs.max(-1)
        self.true[index] = labels.detach().cpu().numpy()
        self.pred[index] = pred.numpy()
        self.confidence[index] = conf.numpy()
        self.logits[index] = logits.numpy()

    def tensors(self) -> list[torch.Tensor]:
        # Rows a process did not see stay zero, so summing across processes assembles the full record.
        return [torch.from_numpy(a.copy()) for a in (self.true, self.pred, self.confidence, self.logits)]

    def load(self, tensors: list[torch.Tensor]) -> None:
        self.true, self.pred, self.confidence, self.logits = (t.detach().cpu().numpy() for t in tensors)


def _weighted_samples(cm: np.ndarray):
    true, pred = np.nonzero(cm)
    return true, pred, cm[true, pred]


def compute_metrics(counts: Counts, names: tuple[str, ...]) -> dict:
    """accuracy, macro/micro precision-recall-F1, per-class report, confusion matrix and mean loss."""
    from sklearn.metrics import precision_recall_fscore_support

    n = float(counts.n)
    out: dict = {"loss": float(counts.loss_sum) / max(n, 1), "samples": int(n)}
    cm = counts.matrix.numpy()
    if counts.multi_label:
        tp, fp, fn = cm[:, 0], cm[:, 1], cm[:, 2]
        p = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
        r = np.divide(tp, tp + fn, out=np.zeros_like(tp), where=(tp + fn) > 0)
        f = np.divide(2 * p * r, p + r, out=np.zeros_like(tp), where=(p + r) > 0)
        support = tp + fn
        mp = tp.sum() / max(tp.sum() + fp.sum(), 1)
        mr = tp.sum() / max(tp.sum() + fn.sum(), 1)
        out.update(accuracy=float(counts.exact) / max(n, 1), micro_precision=mp, micro_recall=mr,
                   micro_f1=(2 * mp * mr / (mp + mr) if mp + mr else 0.0),
                   macro_precision=p.mean(), macro_recall=r.mean(), macro_f1=f.mean(), label_counts=cm.tolist())
    else:
        true, pred, w = _weighted_samples(cm)
        labels = list(range(len(names)))
        p, r, f, _ = precision_recall_fscore_support(true, pred, labels=labels, sample_weight=w, zero_division=0)
        support = cm.sum(1)
        acc = np.trace(cm) / max(cm.sum(), 1)
        # Single-label micro P = R = F1 = accuracy.
        out.update(accuracy=acc, micro_precision=acc, micro_recall=acc, micro_f1=acc,
                   macro_precision=p.mean(), macro_recall=r.mean(), macro_f1=f.mean(),
                   confusion_matrix=cm.astype(int).tolist())
    out["per_class"] = {name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                               "support": int(support[i])} for i, name in enumerate(names)}
    return {k: (float(v) if isinstance(v, (np.floating, float)) else v) for k, v in out.items()}

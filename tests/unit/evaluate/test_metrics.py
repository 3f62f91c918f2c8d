"""Streaming metrics: counts accumulated batch by batch equal scikit-learn on the full arrays."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from tuneforge.evaluate.metrics import Counts, compute_metrics

C = 4
NAMES = ("w", "x", "y", "z")


def _feed(counts: Counts, logits, labels, sizes):
    start = 0
    for size in sizes:
        sl = slice(start, start + size)
        loss = torch.tensor(float(size) * 0.5)  # summed loss of the batch
        counts.add(logits[sl], labels[sl], loss)
        start += size
    assert start == len(labels)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_single_label_matches_sklearn(seed):
    g = torch.Generator().manual_seed(seed)
    n = 301
    logits = torch.randn(n, C, generator=g)
    labels = torch.randint(0, C, (n,), generator=g)
    counts = Counts(C, multi_label=False)
    _feed(counts, logits, labels, [64, 64, 100, 1, 72])
    m = compute_metrics(counts, NAMES)

    y, p = labels.numpy(), logits.argmax(-1).numpy()
    assert m["samples"] == n
    assert m["loss"] == pytest.approx(0.5)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, p))
    for avg in ("macro", "micro"):
        P, R, F, _ = precision_recall_fscore_support(y, p, average=avg, labels=range(C), zero_division=0)
        assert m[f"{avg}_precision"] == pytest.approx(P)
        assert m[f"{avg}_recall"] == pytest.approx(R)
        assert m[f"{avg}_f1"] == pytest.approx(F)
    assert m["confusion_matrix"] == confusion_matrix(y, p, labels=range(C)).tolist()
    P, R, F, S = precision_recall_fscore_support(y, p, labels=range(C), zero_division=0)
    for i, name in enumerate(NAMES):
        assert m["per_class"][name] == pytest.approx({"precision": P[i], "recall": R[i], "f1": F[i], "support": S[i]})
    assert all(isinstance(m[k], float) for k in ("accuracy", "macro_f1", "micro_f1", "loss"))


def test_single_label_with_a_never_predicted_class():
    labels = torch.tensor([0, 1, 2, 2, 1, 0])
    logits = torch.nn.functional.one_hot(torch.tensor([0, 1, 1, 1, 1, 0]), 3).float()  # class 2 never predicted
    counts = Counts(3, multi_label=False)
    counts.add(logits, labels, torch.tensor(0.0))
    m = compute_metrics(counts, ("a", "b", "c"))
    P, R, F, _ = precision_recall_fscore_support(labels.numpy(), logits.argmax(-1).numpy(), average="macro",
                                                 labels=range(3), zero_division=0)
    assert m["macro_f1"] == pytest.approx(F) and m["macro_precision"] == pytest.approx(P)
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert m["accuracy"] == pytest.approx(4 / 6)


@pytest.mark.parametrize("seed", [0, 1])
def test_multi_label_matches_sklearn(seed):
    g = torch.Generator().manual_seed(seed)
    n = 203
    logits = torch.randn(n, C, generator=g)
    labels = (torch.rand(n, C, generator=g) > 0.6).float()
    labels[:, 3] = 0  # a class that never occurs
    counts = Counts(C, multi_label=True)
    _feed(counts, logits, labels, [50, 50, 50, 53])
    m = compute_metrics(counts, NAMES)

    y, p = labels.numpy().astype(int), (logits > 0).numpy().astype(int)
    assert m["samples"] == n
    assert m["accuracy"] == pytest.approx(accuracy_score(y, p))  # exact match (subset accuracy)
    for avg in ("micro", "macro"):
        P, R, F, _ = precision_recall_fscore_support(y, p, average=avg, zero_division=0)
        assert m[f"{avg}_precision"] == pytest.approx(P), avg
        assert m[f"{avg}_recall"] == pytest.approx(R), avg
        assert m[f"{avg}_f1"] == pytest.approx(F), avg
    P, R, F, S = precision_recall_fscore_support(y, p, zero_division=0)
    for i, name in enumerate(NAMES):
        assert m["per_class"][name] == pytest.approx({"precision": P[i], "recall": R[i], "f1": F[i], "support": S[i]})
    assert "confusion_matrix" not in m
    assert np.array(m["label_counts"]).shape == (C, 4)
    assert np.array(m["label_counts"]).sum() == n * C


def test_memory_is_flat():
    for multi in (False, True):
        small, large = Counts(C, multi), Counts(C, multi)
        for counts, n in ((small, 3), (large, 3000)):
            labels = (torch.rand(n, C) > 0.5).float() if multi else torch.randint(0, C, (n,))
            counts.add(torch.randn(n, C), labels, torch.tensor(1.0))
        shapes = [t.shape for t in small.tensors()]
        assert shapes == [t.shape for t in large.tensors()]
        assert shapes[0] == ((C, 4) if multi else (C, C))
        assert sum(t.numel() for t in large.tensors()) == sum(t.numel() for t in small.tensors())
        assert float(large.n) == 3000


def test_load_sums_like_distributed_reduce():
    g = torch.Generator().manual_seed(3)
    logits, labels = torch.randn(40, C, generator=g), torch.randint(0, C, (40,), generator=g)
    whole, a, b = Counts(C, False), Counts(C, False), Counts(C, False)
    whole.add(logits, labels, torch.tensor(4.0))
    a.add(logits[:25], labels[:25], torch.tensor(1.0))
    b.add(logits[25:], labels[25:], torch.tensor(3.0))
    merged = Counts(C, False)
    merged.load([x + y for x, y in zip(a.tensors(), b.tensors())])
    assert compute_metrics(merged, NAMES) == compute_metrics(whole, NAMES)

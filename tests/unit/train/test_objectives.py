"""Losses and class weights."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from conftest import fp_tolerance
from tuneforge.errors import UserError
from tuneforge.model.loss import balanced_class_weights, classification_loss
from tuneforge.train.objectives import classification_step, make_objective


def test_class_weights_none_balanced_explicit():
    assert balanced_class_weights([10, 30, 60], "none") is None
    w = balanced_class_weights([10, 30, 60], "balanced")
    assert w.dtype == torch.float32
    tol = fp_tolerance(torch.float32, 3)  # a sum of 3 counts, a product and a division in fp32 (vs float64 here)
    assert torch.allclose(w, torch.tensor([100 / 30, 100 / 90, 100 / 180]), rtol=tol, atol=0)
    equal_total = torch.full((3,), 100 / 3)  # every class carries the same total weight
    assert torch.allclose((w * torch.tensor([10.0, 30, 60])), equal_total, rtol=tol, atol=0)
    assert balanced_class_weights([5, 5], "balanced").tolist() == [1.0, 1.0]
    explicit = balanced_class_weights([10, 30], [0.2, 3.0])
    assert explicit.dtype == torch.float32 and torch.equal(explicit, torch.tensor([0.2, 3.0]))  # exact: as given


def test_explicit_class_weights_must_fit_the_labels():
    with pytest.raises(UserError, match=r"train.class_weights has 2 weights but the data has 3 classes.*\(neg, neu, pos\)"):
        balanced_class_weights([10, 30, 60], [1.0, 2.0], ("neg", "neu", "pos"))
    with pytest.raises(UserError, match=r"every weight must be above 0"):
        balanced_class_weights([10, 30], [1.0, 0.0])


def test_balanced_weights_with_empty_class_are_finite():
    w = balanced_class_weights([0, 10], "balanced")
    assert torch.isfinite(w).all() and w[0] > w[1]


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(9, 3, generator=g), torch.randint(0, 3, (9,), generator=g), (torch.rand(9, 3, generator=g) > 0.5).float()


def test_single_label_matches_cross_entropy(data):
    logits, labels, _ = data
    w = torch.tensor([0.5, 1.0, 2.0])
    # exact: single-label is F.cross_entropy itself, with the same arguments
    assert torch.equal(classification_loss(logits, labels, False), F.cross_entropy(logits, labels))
    assert torch.equal(classification_loss(logits, labels, False, w), F.cross_entropy(logits, labels, weight=w))
    assert torch.equal(classification_loss(logits, labels, False, reduction="sum"),
                       F.cross_entropy(logits, labels, reduction="sum"))


def test_multi_label_matches_bce(data):
    logits, _, multi = data
    w = torch.tensor([0.5, 1.0, 2.0])
    # the mean over 3 labels, then over 9 rows, vs one mean over the 27 terms: the same sum in another order
    tol = fp_tolerance(torch.float32, 27)
    assert torch.allclose(classification_loss(logits, multi, True), F.binary_cross_entropy_with_logits(logits, multi),
                          rtol=tol, atol=0)
    assert torch.allclose(classification_loss(logits, multi, True, w),
                          F.binary_cross_entropy_with_logits(logits, multi, weight=w), rtol=tol, atol=0)
    per_row = F.binary_cross_entropy_with_logits(logits, multi, reduction="none").mean(1)
    # exact: the same per-row means, summed by the same op
    assert torch.equal(classification_loss(logits, multi, True, reduction="sum"), per_row.sum())
    # sum / rows == mean, so streaming evaluation's loss equals the training loss (up to the rounding of 9 terms)
    assert torch.allclose(classification_loss(logits, multi, True, reduction="sum") / 9,
                          classification_loss(logits, multi, True), rtol=fp_tolerance(torch.float32, 9), atol=0)


def test_multi_vs_single_differ(data):
    logits, labels, _ = data
    one_hot = F.one_hot(labels, 3).float()
    # not a rounding bound: different losses (behavioural); allclose's defaults are ample
    assert not torch.allclose(classification_loss(logits, one_hot, True), classification_loss(logits, labels, False))


def test_half_precision_logits_are_upcast(data):
    logits, labels, _ = data
    loss = classification_loss(logits.bfloat16(), labels, False)
    assert loss.dtype == torch.float32


def test_classification_step_with_model():
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(20, 3)

        def forward(self, input_ids, attention_mask):
            from types import SimpleNamespace

            return SimpleNamespace(logits=self.emb(input_ids).mean(1))

    batch = {"input_ids": torch.tensor([[1, 2], [3, 4]]), "attention_mask": torch.ones(2, 2), "labels": torch.tensor([0, 2])}
    model = M()
    step = make_objective("classification", multi_label=False, weights=torch.tensor([1.0, 1.0, 3.0]))
    loss, logits = step(model, batch)
    assert logits.shape == (2, 3)
    tol = fp_tolerance(torch.float32, 3 + 2)  # the log-sum-exp over 3 classes, the (weighted) mean over 2 rows
    assert torch.allclose(loss, F.cross_entropy(logits, batch["labels"], weight=torch.tensor([1.0, 1.0, 3.0])),
                          rtol=tol, atol=0)
    loss2, _ = classification_step(model, batch, False)
    assert torch.allclose(loss2, F.cross_entropy(logits, batch["labels"]), rtol=tol, atol=0)

"""The classifier head fitted by logistic regression: the model's softmax equals the regression's probabilities."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification

from tuneforge.data.encode import Encoded, collate
from tuneforge.model.linear_head import fit_linear_head, head_fits, pooled, pooled_vectors
from tuneforge.train.objectives import make_objective


def _model(tiny_model, labels: int):
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=labels).eval()


def _data(n: int, labels: int, seed: int = 0) -> Encoded:
    rng = np.random.default_rng(seed)
    ids = [[2, *rng.integers(5, 60, size=int(rng.integers(2, 9))).tolist(), 3] for _ in range(n)]
    return Encoded(ids, np.arange(n) % labels)


def test_pooled_vectors_keep_row_order(tiny_model):
    model, data = _model(tiny_model, 2), _data(11, 2)
    vectors = pooled_vectors(model, data, pad_id=0, batch_size=4)
    with torch.no_grad():
        one = pooled(model, collate(data, np.array([7]), 0)).numpy()[0]
    np.testing.assert_allclose(vectors[7], one, atol=1e-5)


@pytest.mark.parametrize("labels", [2, 3])
def test_the_fitted_head_gives_the_regressions_probabilities(tiny_model, labels):
    from sklearn.linear_model import LogisticRegression

    model, data = _model(tiny_model, labels), _data(30, labels)
    vectors = pooled_vectors(model, data, pad_id=0)
    fit_linear_head(model, vectors, data.labels)
    expected = LogisticRegression(C=1.0, max_iter=2000, random_state=0).fit(vectors, data.labels).predict_proba(vectors)
    batch = collate(data, np.arange(len(data)), 0)
    with torch.no_grad():
        probs = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.softmax(-1)
    np.testing.assert_allclose(probs.numpy(), expected, atol=1e-4)


def test_head_fits_needs_a_linear_head_over_a_pooler(tiny_model):
    assert head_fits(_model(tiny_model, 2)) is None
    model = _model(tiny_model, 2)
    model.bert.pooler = None
    assert "pooler" in head_fits(model)


def test_contrastive_loss_trains_the_encoder_not_the_head(tiny_model):
    model, data = _model(tiny_model, 2).train(), _data(6, 2)
    a, b = collate(data, np.array([0, 1, 2]), 0), collate(data, np.array([2, 3, 4]), 0)
    batch = {"input_ids": a["input_ids"], "attention_mask": a["attention_mask"], "pair_input_ids": b["input_ids"],
             "pair_attention_mask": b["attention_mask"], "same": torch.tensor([1.0, 0.0, 1.0])}
    torch.manual_seed(1)
    loss, cos = make_objective("contrastive")(model, batch)
    torch.manual_seed(1)
    u, v = pooled(model, batch), pooled(model, {"input_ids": b["input_ids"], "attention_mask": b["attention_mask"]})
    manual = ((torch.nn.functional.cosine_similarity(u, v) - batch["same"]) ** 2).mean()
    assert loss.item() == pytest.approx(manual.item(), rel=1e-5)
    loss.backward()
    assert model.bert.encoder.layer[0].attention.self.query.weight.grad.abs().sum() > 0
    assert model.classifier.weight.grad is None

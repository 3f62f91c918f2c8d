"""Calibration: ECE, temperature scaling, bootstrap intervals and worst errors on synthetic data with known answers."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from conftest import fp_tolerance
from tuneforge.evaluate.calibration import (
    bootstrap_ci,
    calibration_summary,
    expected_calibration_error,
    fit_temperature,
    nll,
    reliability,
    softmax,
    worst_errors,
)
from tuneforge.evaluate.metrics import RowOutputs

NAMES = ("a", "b", "c")


def _sample(z: np.ndarray, seed: int) -> np.ndarray:
    """Labels drawn from softmax(z): z is then a perfectly calibrated model of them."""
    rng = np.random.default_rng(seed)
    p = softmax(z)
    u = rng.random((len(z), 1))
    return (p.cumsum(-1) < u).sum(-1).clip(0, z.shape[1] - 1)


def _logits(n: int, c: int = 3, seed: int = 0, scale: float = 2.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, c)) * scale


def test_ece_perfectly_calibrated_is_near_zero_and_overconfident_is_not():
    z = _logits(20000, seed=1)
    y = _sample(z, 2)
    p = softmax(z)
    ece = expected_calibration_error(p.max(-1), p.argmax(-1) == y)
    assert ece < 0.015
    hot = softmax(3 * z)  # the same ranking, three times too sure
    ece_hot = expected_calibration_error(hot.max(-1), hot.argmax(-1) == y)
    assert ece_hot > 0.08 and ece_hot > 5 * ece


def test_ece_by_hand_and_reliability_bins():
    conf = np.array([0.95, 0.95, 0.55, 0.55])
    correct = np.array([1, 0, 1, 1])
    # 15 bins of width 1/15: 0.95 falls in bin 14, 0.55 in bin 8.
    expected = (2 / 4) * abs(0.5 - 0.95) + (2 / 4) * abs(1.0 - 0.55)
    assert expected_calibration_error(conf, correct) == pytest.approx(expected)
    rel = reliability(conf, correct)
    assert len(rel["count"]) == 15 and sum(rel["count"]) == 4
    assert rel["count"][14] == 2 and rel["accuracy"][14] == pytest.approx(0.5)
    assert rel["confidence"][8] == pytest.approx(0.55) and rel["accuracy"][8] == 1.0
    assert rel["accuracy"][0] is None  # empty bin
    assert expected_calibration_error(np.array([]), np.array([])) == 0.0


def test_fit_temperature_recovers_two():
    z = _logits(8000, seed=3)
    y = _sample(z, 4)
    t = fit_temperature(2 * z, y)
    assert t == pytest.approx(2.0, rel=0.10)  # not a rounding bound: T fitted on 8000 sampled labels (statistical)
    assert nll(2 * z, y, t) < nll(2 * z, y, 1.0)
    # Under-confident logits need T < 1.
    assert fit_temperature(0.5 * z, y) == pytest.approx(0.5, rel=0.10)


def test_fit_temperature_stays_in_bounds():
    z = np.array([[5.0, -5.0], [5.0, -5.0], [-5.0, 5.0]])
    assert 0.05 <= fit_temperature(z, np.array([0, 0, 1])) <= 20.0  # all correct → small T, clipped
    assert fit_temperature(np.zeros((0, 2)), np.zeros(0, dtype=int)) == 1.0


def test_calibration_summary_temperature_lowers_ece_of_overconfident_logits():
    z = _logits(6000, seed=5)
    y = _sample(z, 6)
    hot = 2.5 * z
    t = fit_temperature(hot, y)
    cal = calibration_summary(hot, y, t)
    assert cal["ece_after"] < cal["ece_before"] / 2
    assert cal["nll_after"] < cal["nll_before"]
    assert cal["temperature"] == t and cal["rows"] == 6000
    assert sum(cal["reliability_before"]["count"]) == 6000


def test_bootstrap_ci_contains_point_and_narrows_with_more_rows():
    rng = np.random.default_rng(7)

    def data(n):
        true = rng.integers(0, 3, n)
        pred = np.where(rng.random(n) < 0.8, true, rng.integers(0, 3, n))
        return true, pred

    widths = []
    for n in (200, 5000):
        true, pred = data(n)
        ci = bootstrap_ci(true, pred, NAMES, samples=500, seed=0)
        acc, f1 = (true == pred).mean(), f1_score(true, pred, average="macro")
        assert ci["accuracy"][0] <= acc <= ci["accuracy"][1]
        assert ci["macro_f1"][0] <= f1 <= ci["macro_f1"][1]
        widths.append(ci["accuracy"][1] - ci["accuracy"][0])
    assert widths[1] < widths[0] / 3  # ~ 1/sqrt(n): 5x narrower expected
    assert bootstrap_ci(*data(10), NAMES, samples=0) == {}


def test_bootstrap_ci_is_seeded_and_fast():
    rng = np.random.default_rng(8)
    true = rng.integers(0, 3, 10_000)
    pred = np.where(rng.random(10_000) < 0.9, true, rng.integers(0, 3, 10_000))
    start = time.perf_counter()
    a = bootstrap_ci(true, pred, NAMES, samples=1000, seed=1)
    assert time.perf_counter() - start < 4.0  # the target is < 2 s; slack for a loaded CI machine
    assert a == bootstrap_ci(true, pred, NAMES, samples=1000, seed=1)
    assert a != bootstrap_ci(true, pred, NAMES, samples=1000, seed=2)


def test_worst_errors_are_the_most_confident_mistakes():
    true = np.array([0, 1, 2, 0, 1, 2])
    pred = np.array([0, 2, 2, 1, 0, 0])
    conf = np.array([0.99, 0.6, 0.98, 0.9, 0.7, 0.95])
    texts = [f"t{i}" for i in range(6)]
    errs = worst_errors(true, pred, conf, texts, NAMES, k=3)
    assert [e["row"] for e in errs] == [5, 3, 4]  # wrong rows 1, 3, 4, 5 by confidence; correct 0 and 2 never appear
    assert errs[0] == {"row": 5, "text": "t5", "true": "c", "predicted": "a", "confidence": 0.95}
    assert worst_errors(true, true, conf, texts, NAMES) == []


def test_row_outputs_keep_input_order():
    rows = RowOutputs(4, 3)
    logits = torch.tensor([[0.0, 2.0, 0.0], [3.0, 0.0, 0.0]])
    rows.add(np.array([3, 1]), logits, torch.tensor([1, 2]))
    assert rows.true.tolist() == [0, 2, 0, 1] and rows.pred.tolist() == [0, 0, 0, 1]
    assert rows.logits[3].tolist() == [0.0, 2.0, 0.0] and rows.logits.dtype == np.float32
    # fp32 softmax over 3 logits vs float64
    want = softmax(np.array([3.0, 0.0, 0.0])).max()
    assert rows.confidence[1] == pytest.approx(want, rel=fp_tolerance(np.float32, 3))
    # Summing the tensors of two processes that saw disjoint rows gives the full record.
    other = RowOutputs(4, 3)
    other.add(np.array([0, 2]), torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]), torch.tensor([2, 0]))
    rows.load([a + b for a, b in zip(rows.tensors(), other.tensors())])
    assert rows.true.tolist() == [2, 2, 0, 1] and rows.pred.tolist() == [2, 0, 0, 1]


def test_evaluate_classifier_details_match_a_plain_forward(tiny_model):
    """details=True keeps the counted metrics unchanged and records each row's logits in input order."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tuneforge.data.encode import encode_texts
    from tuneforge.evaluate.stream import evaluate_classifier
    from tuneforge.model.build import quiet_transformers

    quiet_transformers()  # the fresh head's "MISSING weights" load report is expected here
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=3).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    texts = ["good", "the movie was really very bad and slow", "nice food", "awful", "a b c d e f g", "great app"]
    labels = np.array([0, 1, 2, 1, 0, 2])
    data = encode_texts(tokenizer, texts, 32, labels)
    plain = evaluate_classifier(model, data, NAMES, False, batch_size=4)
    metrics, rows = evaluate_classifier(model, data, NAMES, False, batch_size=4, details=True)
    assert metrics == plain
    with torch.no_grad():
        expected = torch.cat([model(**tokenizer([t], return_tensors="pt")).logits for t in texts]).numpy()
    # the same math on padded batches of 4 vs one text at a time: 2 layers over the padded length, 32 hidden, 64 FFN,
    # pooler and classifier (32 each)
    tol = fp_tolerance(np.float32, 2 * (int(max(data.lengths)) + 32 + 64) + 2 * 32)
    assert np.abs(rows.logits - expected).max() <= tol * np.abs(expected).max()
    assert rows.true.tolist() == labels.tolist() and rows.pred.tolist() == expected.argmax(-1).tolist()
    assert metrics["accuracy"] == pytest.approx((rows.pred == rows.true).mean())
    _, none = evaluate_classifier(model, encode_texts(tokenizer, texts, 32, np.eye(3, dtype=np.float32)[labels]),
                                  NAMES, True, details=True)
    assert none is None  # multi-label keeps counts only

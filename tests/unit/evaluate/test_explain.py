"""Integrated gradients: completeness, a planted decisive token gets the top attribution, targets, word merging."""
from __future__ import annotations

import random

import numpy as np
import pytest

from conftest import fp_tolerance
from tuneforge.errors import UserError
from tuneforge.evaluate.explain import integrated_gradients, merge_pieces

PLANTED = "excellent"
WORDS = ["the", "a", "movie", "food", "service", "was", "really", "very", "and", "it", "this", "phone", "hotel",
         "staff", "quite", "is", "overall", "room", "delivery", "app"]  # the conftest filler words


def _classifier(folder, seed: int = 0):
    """The conftest tiny BERT with a seeded random 2-label head."""
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    from tuneforge.model.build import quiet_transformers

    quiet_transformers()
    torch.manual_seed(seed)
    model = BertForSequenceClassification.from_pretrained(folder, num_labels=2, id2label={0: "no", 1: "yes"},
                                                          label2id={"no": 0, "yes": 1})
    return model.eval(), AutoTokenizer.from_pretrained(folder)


def _planted_texts(n: int, seed: int) -> list[tuple[str, int]]:
    """Label 1 iff PLANTED is present; both classes have 7 words, so length says nothing."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        words = [rng.choice(WORDS) for _ in range(7)]
        if i % 2:
            words[rng.randrange(7)] = PLANTED
        rows.append((" ".join(words), i % 2))
    return rows


def _train_planted(folder, steps: int, lr: float):
    """The tiny BERT (hidden 32, 2 layers) trained with plain torch on the planted-token task; returns accuracy too."""
    import torch

    torch.set_num_threads(1)
    model, tokenizer = _classifier(folder, seed=0)
    rows = _planted_texts(256, seed=1)
    enc = tokenizer([t for t, _ in rows], padding=True, return_tensors="pt")
    y = torch.tensor([label for _, label in rows])
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(rows), (32,), generator=generator)
        loss = model(**{k: v[idx] for k, v in enc.items()}, labels=y[idx]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(**enc).logits.argmax(-1) == y).float().mean().item()
    return model, tokenizer, accuracy


@pytest.fixture(scope="module")
def trained_planted(tiny_model):
    """Trained to saturation (train accuracy 1.0, p > 0.99): the sanity-test model."""
    return _train_planted(tiny_model, steps=150, lr=3e-3)


@pytest.fixture(scope="module")
def lightly_trained(tiny_model):
    """40 gentle steps: the logit still moves smoothly along the path, so quadrature error is tiny."""
    return _train_planted(tiny_model, steps=40, lr=1e-3)


def test_completeness(lightly_trained):
    """On a lightly trained (smooth) tiny classifier, 64 steps make sum(attributions) = f(x) - f(baseline)."""
    model, tokenizer, _ = lightly_trained
    for text in ["the excellent phone app", "awful delivery, excellent app!"]:
        ex = integrated_gradients(model, tokenizer, text, steps=64)
        assert abs(ex.delta) > 0.1
        # not a rounding bound: the path integral's quadrature error (64 steps), which the gap reports
        assert abs(ex.completeness_gap) < 1e-4 + 1e-3 * abs(ex.delta), (ex.completeness_gap, ex.delta)
        assert sum(ex.attributions) == pytest.approx(ex.delta, abs=1e-4 + 1e-3 * abs(ex.delta))
        assert "[CLS]" not in ex.tokens and "[SEP]" not in ex.tokens
        assert len(ex.tokens) == len(ex.attributions) == len(ex.word_ids) == len(ex.spans)
    # too few steps leaves a visible gap (what the reported gap is for), then it shrinks with more steps
    few = integrated_gradients(model, tokenizer, text, steps=1)
    assert abs(few.completeness_gap) > abs(ex.completeness_gap)


def test_planted_token_gets_the_top_attribution(trained_planted):
    model, tokenizer, accuracy = trained_planted
    assert accuracy >= 0.99
    for text, label in _planted_texts(12, seed=99):
        if not label:
            continue
        ex = integrated_gradients(model, tokenizer, text, target="yes")  # the default 50 steps
        assert ex.label == "yes" and ex.probability > 0.9, text
        top = max(range(len(ex.tokens)), key=lambda i: ex.attributions[i])
        assert ex.tokens[top] == PLANTED, list(zip(ex.tokens, ex.attributions))


def test_gap_shows_when_steps_are_too_few_on_a_sharp_model(trained_planted):
    """The trained tiny model flips its logit within ~1% of the path: 32 steps miss that, the gap says so, and
    enough steps close it (IG's completeness holds; only the quadrature was short)."""
    model, tokenizer, _ = trained_planted
    text = next(t for t, label in _planted_texts(12, seed=99) if label)
    coarse = integrated_gradients(model, tokenizer, text, target="yes", steps=32)
    fine = integrated_gradients(model, tokenizer, text, target="yes", steps=1024)
    assert fine.delta == coarse.delta  # exact: the same forward of text and baseline, whatever the steps
    assert abs(fine.completeness_gap) < 0.01 * abs(fine.delta)
    assert abs(fine.completeness_gap) < abs(coarse.completeness_gap)
    assert fine.tokens[max(range(len(fine.tokens)), key=lambda i: fine.attributions[i])] == PLANTED


def test_default_target_is_the_prediction(trained_planted):
    model, tokenizer, _ = trained_planted
    ex = integrated_gradients(model, tokenizer, "the hotel staff was quite very nice", steps=8)
    assert ex.label == ex.target == "no" and ex.target_probability == ex.probability
    other = integrated_gradients(model, tokenizer, "the hotel staff was quite very nice", target="yes", steps=8)
    assert other.target == "yes" and other.label == "no"
    # the same forward; a fp32 softmax over 2 labels sums to 1 within its rounding
    assert other.target_probability == pytest.approx(1 - ex.probability, abs=fp_tolerance(np.float32, 2))


def test_unknown_target_is_a_user_error(tiny_model):
    model, tokenizer = _classifier(tiny_model)
    with pytest.raises(UserError, match=r"--target 'yse'.*Labels: no, yes.*Did you mean 'yes'"):
        integrated_gradients(model, tokenizer, "good", target="yse", steps=2)


def test_temperature_scales_probabilities_not_attributions(lightly_trained):
    import math

    model, tokenizer, _ = lightly_trained
    plain = integrated_gradients(model, tokenizer, "the excellent phone app", target="yes", steps=8)
    model.config.tuneforge_temperature = 0.5  # what calibration stores; predict divides the logits by it
    try:
        hot = integrated_gradients(model, tokenizer, "the excellent phone app", target="yes", steps=8)
    finally:
        del model.config.tuneforge_temperature
    assert hot.attributions == plain.attributions  # exact: the temperature only reaches the probabilities

    def log_odds(p):
        return math.log(p / (1 - p))

    assert abs(log_odds(plain.target_probability)) > 0.1
    # The logits are the same and / 0.5 is exact; each probability is a fp32 softmax over 2 labels (rounding tol),
    # and d log_odds = dp / (p (1 - p)).
    tol = fp_tolerance(np.float32, 2)
    p, q = plain.target_probability, hot.target_probability
    bound = tol / (q * (1 - q)) + 2 * tol / (p * (1 - p))
    assert log_odds(q) == pytest.approx(2 * log_odds(p), rel=0, abs=bound)


def test_merge_pieces_sums_the_pieces_of_a_word():
    tokens = ["the", "x", "##y", "##z", "app", "!"]
    scores = [0.5, 1.0, -0.25, 0.5, 2.0, -1.0]
    merged = merge_pieces(tokens, scores, [0, 1, 1, 1, 2, 3])
    assert merged == [("the", 0.5), ("xyz", 1.25), ("app", 2.0), ("!", -1.0)]
    text = "The XYZ app!"
    spans = [(0, 3), (4, 5), (5, 6), (6, 7), (8, 11), (11, 12)]
    assert [w for w, _ in merge_pieces(tokens, scores, [0, 1, 1, 1, 2, 3], text, spans)] == ["The", "XYZ", "app", "!"]


def test_words_of_an_explanation_keep_the_original_text(tiny_model):
    model, tokenizer = _classifier(tiny_model)
    ex = integrated_gradients(model, tokenizer, "Great xyzzy!", steps=4)
    words = ex.words()
    assert [w for w, _ in words] == ["Great", "xyzzy", "!"]
    assert ex.tokens[1:6] == ["x", "##y", "##z", "##z", "##y"]
    # float64 sums of the same terms, grouped by word: the rounding of that many terms, at their magnitude
    atol = fp_tolerance(np.float64, len(ex.attributions)) * sum(map(abs, ex.attributions))
    assert words[1][1] == pytest.approx(sum(ex.attributions[1:6]), rel=0, abs=atol)
    assert sum(s for _, s in words) == pytest.approx(sum(ex.attributions), rel=0, abs=atol)

"""The TF-IDF + logistic regression baseline and the sentence that compares it with the transformer."""
from __future__ import annotations

import random

from tuneforge.evaluate.baseline import compare_sentence, run_baseline

NAMES = ("negative", "positive")
POS = ["good", "great", "excellent", "lovely", "superb"]
NEG = ["bad", "awful", "terrible", "poor", "broken"]
FILL = ["the", "movie", "food", "was", "really", "and", "service", "hotel"]


def _toy(n: int, seed: int):
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        y = i % 2
        words = rng.sample(FILL, 4) + rng.sample(POS if y else NEG, 2)
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(y)
    return texts, labels


def test_baseline_learns_a_separable_toy_task():
    tx, ty = _toy(200, 1)
    ex, ey = _toy(80, 2)
    out = run_baseline(tx, ty, ex, ey, NAMES, seed=0)
    assert out["accuracy"] > 0.9 and out["macro_f1"] > 0.9
    assert set(out["per_class"]) == set(NAMES)
    assert {"precision", "recall", "f1", "support"} <= out["per_class"]["positive"].keys()
    assert sum(c["support"] for c in out["per_class"].values()) == 80
    assert sum(map(sum, out["confusion_matrix"])) == 80
    assert out["train_rows"] == 200 and out["eval_rows"] == 80
    assert out["fit_seconds"] >= 0
    assert out["analyzer"] == "word 1-2-grams"
    assert out == {**run_baseline(tx, ty, ex, ey, NAMES, seed=0), "fit_seconds": out["fit_seconds"]}  # deterministic


def test_cjk_texts_select_char_ngrams():
    pos, neg = ["很好", "非常棒", "喜欢"], ["很差", "太糟糕", "讨厌"]
    rng = random.Random(0)
    texts, labels = [], []
    for i in range(60):
        y = i % 2
        texts.append("这个酒店" + rng.choice(pos if y else neg) + "服务")
        labels.append(y)
    out = run_baseline(texts[:40], labels[:40], texts[40:], labels[40:], NAMES)
    assert out["analyzer"] == "char 1-3-grams"
    assert out["accuracy"] > 0.9


def test_multi_label_is_skipped_with_a_reason():
    out = run_baseline(["a b", "c d"], [[1, 0], [0, 1]], ["a"], [[1, 0]], ("x", "y"))
    assert out["skipped"] is True and "multi-label" in out["reason"]


def test_compare_sentence_says_plainly_when_the_gap_is_small():
    small = compare_sentence(0.905, 0.893, 0.90, 0.89)
    assert "nearly as good" in small and "buys little" in small and "+1.2" in small
    big = compare_sentence(0.93, 0.85)
    assert "gains 8.0 accuracy points" in big
    worse = compare_sentence(0.80, 0.85)
    assert "beats the transformer by 5.0" in worse

"""Suspect labels: cross-validated TF-IDF probabilities ranked by cleanlab find the rows whose labels were flipped."""
from __future__ import annotations

import random

from tuneforge.evaluate.suspects import find_suspects

POS = ["wonderful", "superb", "delightful", "brilliant", "charming", "moving", "gorgeous", "excellent"]
NEG = ["dreadful", "awful", "tedious", "boring", "clumsy", "ugly", "terrible", "painful"]
FILL = ["the", "film", "plot", "cast", "music", "story", "was", "really", "and", "quite", "scenes", "ending",
        "acting", "script", "director", "camera", "pace", "dialogue"]
FLIPPED = [7, 61, 130, 202, 277]


def _data(n: int = 300, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        label = "positive" if i % 2 else "negative"
        words = rng.sample(FILL, 5) + rng.sample(POS if label == "positive" else NEG, 2)
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


def test_flipped_labels_rank_at_the_top():
    texts, labels = _data()
    for i in FLIPPED:
        labels[i] = "positive" if labels[i] == "negative" else "negative"
    result = find_suspects(texts, labels, top_k=20)
    top_rows = [r["row"] for r in result["top"]]
    found = {i + 1 for i in FLIPPED} & set(top_rows)
    assert len(found) >= 4, (top_rows, result["flagged"])
    assert {i + 1 for i in FLIPPED} & set(top_rows[:5]), top_rows  # the very top is a flipped row
    assert result["folds"] == 5 and result["rows_checked"] == 300
    assert 0.9 <= result["oof_accuracy"] <= 0.99  # the flipped rows are the ones it gets "wrong"
    first = next(r for r in result["top"] if r["row"] - 1 in FLIPPED)
    assert first["given"] == labels[first["row"] - 1] and first["predicted"] != first["given"]
    assert first["given_prob"] < 0.5 and first["text"] == texts[first["row"] - 1]


def test_clean_data_flags_little_and_rows_map_back():
    texts, labels = _data(200, seed=1)
    result = find_suspects(texts, labels, top_k=5, rows=[i + 101 for i in range(200)])
    assert result["flagged"] <= 3
    assert all(101 <= r["row"] <= 300 for r in result["top"])


def test_multi_label_is_skipped_with_a_reason():
    result = find_suspects(["a b", "c d"], [["x"], ["x", "y"]])
    assert "multi-label" in result["skipped"] and result["top"] == []


def test_tiny_classes_use_fewer_folds_or_are_left_out():
    texts, labels = _data(40, seed=2)
    texts += ["a lone odd row", "three small ones", "small ones again", "the third small one"]
    labels += ["singleton", "small", "small", "small"]
    result = find_suspects(texts, labels)
    assert result["folds"] == 3
    assert any("singleton" in n for n in result["notes"]) and any("3-fold" in n for n in result["notes"])
    assert result["rows_checked"] == 43


def test_one_usable_class_is_skipped():
    result = find_suspects(["a", "b", "c"], ["x", "x", "y"])
    assert "fewer than two classes" in result["skipped"] and result["flagged"] == 0


def test_copies_share_a_fold_so_a_repeated_wrong_label_is_still_flagged():
    texts, labels = _data()
    for i in FLIPPED:
        labels[i] = "positive" if labels[i] == "negative" else "negative"
    for i in FLIPPED:  # each wrong row twice: a model that saw one copy would vouch for the other
        texts.append(texts[i].upper() + " !")
        labels.append(labels[i])
    result = find_suspects(texts, labels, top_k=20)
    top_rows = {r["row"] for r in result["top"]}
    assert len(top_rows & ({i + 1 for i in FLIPPED} | set(range(301, 306)))) >= 8, sorted(top_rows)


def test_grouped_folds_keep_copies_together():
    import numpy as np

    from tuneforge.evaluate.suspects import grouped_folds

    groups = [f"t{i % 40}" for i in range(120)]
    y = np.array([i % 40 % 2 for i in range(120)])
    folds = grouped_folds(groups, y, 5, seed=0)
    held = np.concatenate([h for _, h in folds])
    assert sorted(held.tolist()) == list(range(120))  # a partition
    for train, test in folds:
        assert not {groups[i] for i in train} & {groups[i] for i in test}
        assert set(y[test]) == {0, 1}

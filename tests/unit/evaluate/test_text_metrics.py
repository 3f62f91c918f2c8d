"""Scores of generated answers: exact match, labels read from answers, ROUGE-L that counts Chinese."""
from __future__ import annotations

import pytest

from tuneforge.evaluate.text_metrics import (
    CjkWordTokenizer,
    answer_scores,
    auto_labels,
    match_label,
    normalize_answer,
    rouge_l,
)


def test_exact_match_ignores_case_spacing_and_edge_punctuation():
    assert normalize_answer("  Positive. ") == normalize_answer("positive") == "positive"
    assert normalize_answer("好评！") == "好评"
    assert normalize_answer("Ｐｏｓｉｔｉｖｅ") == "positive"  # full-width letters (NFKC)
    assert normalize_answer("not positive") != "positive"


def test_rouge_l_counts_chinese_characters():
    from rouge_score import rouge_scorer

    # rouge-score's own tokenizer keeps only [a-z0-9]: a Chinese answer would score 0 against itself
    assert rouge_scorer.RougeScorer(["rougeL"]).score("外卖很好吃", "外卖很好吃")["rougeL"].fmeasure == 0
    assert rouge_l(["外卖很好吃"], ["外卖很好吃"]) == [1.0]
    # "很好吃" against "外卖很好吃": precision 3/3, recall 3/5 → F = 0.75
    assert rouge_l(["很好吃"], ["外卖很好吃"])[0] == pytest.approx(0.75)
    assert CjkWordTokenizer().tokenize("好评 Great food, 5星!") == ["好", "评", "great", "food", "5", "星"]
    assert rouge_l(["the food was great"], ["The food was GREAT."]) == [1.0]


def test_labels_are_read_from_answers():
    labels = ["negative", "positive"]
    assert match_label("Positive!", labels) == "positive"
    assert match_label("positive, because the food was good", labels) == "positive"  # the only label it starts with
    assert match_label("neutral", labels) is None
    assert match_label("差评", ["好评", "差评"]) == "差评"


def test_auto_label_set_only_for_few_repeated_answers():
    assert auto_labels(["positive", "negative"] * 5) == ["negative", "positive"]
    assert auto_labels([f"answer {i}" for i in range(10)]) is None  # every answer different: free text
    assert auto_labels([str(i % 30) for i in range(300)]) is None  # more than 20 distinct answers


def test_answer_scores():
    scores = answer_scores(["positive", "Negative.", "maybe"], ["positive", "negative", "positive"],
                           ["negative", "positive"])
    assert scores["exact_match"] == scores["accuracy"] == round(2 / 3, 5)  # rounded to 5 places for the report
    assert scores["off_label"] == round(1 / 3, 5) and scores["generated"] == 3
    assert [r["label"] for r in scores["per_row"]] == ["positive", "negative", None]
    assert "accuracy" not in answer_scores(["a"], ["a"])

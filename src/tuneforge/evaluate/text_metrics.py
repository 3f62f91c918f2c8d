"""Scores of generated answers against references: exact match, accuracy over a label set, ROUGE-L.

ROUGE-L comes from the `rouge-score` package with a tokenizer of our own: its default one keeps only [a-z0-9] and
so scores every Chinese answer 0. Here a CJK character is one token (as in Chinese ROUGE practice) and any other run
of letters or digits is one word, after NFKC and lower-casing.
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_TOKEN = re.compile(f"[{_CJK}]|[^\\W_{_CJK}]+")
_EDGE_PUNCT = " \t\n.,!?;:'\"`()[]。，！？；：、“”‘’（）"
AUTO_MAX_LABELS = 20  # more distinct answers than this is free text, not a label set


def normalize_answer(text: str) -> str:
    """NFKC, lower case, whitespace collapsed, punctuation and quotes at either end removed."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split()).strip(_EDGE_PUNCT)


class CjkWordTokenizer:
    """The `tokenize` interface rouge-score asks for."""

    def tokenize(self, text: str) -> list[str]:
        return _TOKEN.findall(unicodedata.normalize("NFKC", text).casefold())


def rouge_l(predictions: list[str], references: list[str]) -> list[float]:
    """ROUGE-L F-measure of each prediction against its reference."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=CjkWordTokenizer())
    return [scorer.score(ref, pred)["rougeL"].fmeasure for pred, ref in zip(predictions, references)]


def match_label(prediction: str, labels: list[str]) -> str | None:
    """The label a generated answer gives: the one it equals, else the only one it starts with; None otherwise."""
    text = normalize_answer(prediction)
    by_norm = {normalize_answer(x): x for x in labels}
    if text in by_norm:
        return by_norm[text]
    starts = [x for n, x in by_norm.items() if n and text.startswith(n)]
    return starts[0] if len(starts) == 1 else None


def auto_labels(responses: list[str]) -> list[str] | None:
    """The distinct training answers, when they look like a label set (at most 20, each used twice on average)."""
    counts = Counter(r.strip() for r in responses)
    if len(counts) > AUTO_MAX_LABELS or len(responses) < 2 * len(counts):
        return None
    return sorted(counts)


def answer_scores(predictions: list[str], references: list[str], labels: list[str] | None = None) -> dict:
    """exact_match and rouge_l (means over the rows), and with `labels`: accuracy (the label read from the answer
    is the reference's) and off_label (share of answers that name no label)."""
    n = len(predictions)
    if not n:
        return {"generated": 0}
    exact = [normalize_answer(p) == normalize_answer(r) for p, r in zip(predictions, references)]
    rouge = rouge_l(predictions, references)
    out = {"generated": n, "exact_match": round(sum(exact) / n, 5), "rouge_l": round(sum(rouge) / n, 5),
           "per_row": [{"exact_match": e, "rouge_l": round(r, 4)} for e, r in zip(exact, rouge)]}
    if labels:
        read = [match_label(p, labels) for p in predictions]
        gold = [match_label(r, labels) for r in references]
        out["accuracy"] = round(sum(a is not None and a == b for a, b in zip(read, gold)) / n, 5)
        out["off_label"] = round(sum(a is None for a in read) / n, 5)
        for row, label in zip(out["per_row"], read):
            row["label"] = label
    return out

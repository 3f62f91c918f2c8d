"""Tokenizer coverage: [UNK] rate, scripts, missing pieces and the user-facing warning."""
from __future__ import annotations

import pytest

from tuneforge.data.coverage import measure_coverage, script_of

CHINESE = ["这部电影非常好看", "服务态度很差，再也不来了", "物流很快"]
ENGLISH = ["The movie was really good.", "Awful service, very slow delivery!"]


@pytest.fixture(scope="module")
def minilm():
    from tuneforge.model.build import load_tokenizer

    return load_tokenizer("minilm-l6")


@pytest.fixture(scope="module")
def tiny_tok(tiny_model):
    from tuneforge.model.build import load_tokenizer

    return load_tokenizer(str(tiny_model))


def test_script_of():
    assert script_of("好") == "han"
    assert script_of("a") == "latin" and script_of("é") == "latin"
    assert script_of("я") == "cyrillic"
    assert script_of("か") == "kana" and script_of("한") == "hangul"
    assert script_of("α") == "greek"
    assert script_of(" ") is None and script_of("7") is None and script_of("!") is None


def test_chinese_has_high_unk_rate_with_english_tokenizer(minilm):
    cov = measure_coverage(minilm, CHINESE)
    assert cov.unk_rate > 0.5
    assert cov.script_share["han"] > 0.9
    assert cov.tokens > 0 and cov.chars == sum(len(t) for t in CHINESE)
    assert set(cov.missing) >= {"这", "电", "影", "务", "物", "流"}
    assert all(len(w) == 1 for w in cov.missing)  # BERT splits Han text per character
    summary = cov.summary()
    assert summary["distinct_unknown_pieces"] == len(cov.missing)
    assert summary["unk_rate"] == round(cov.unk_rate, 4)


def test_english_has_no_unk(minilm):
    cov = measure_coverage(minilm, ENGLISH)
    assert cov.unk_rate == 0
    assert cov.unk_tokens == 0 and not cov.missing
    assert cov.script_share == {"latin": 1.0}
    assert 0 < cov.tokens_per_char < 1


def test_warning_none_below_threshold(minilm):
    assert measure_coverage(minilm, ENGLISH).warning("minilm-l6", 0.02) is None
    cov = measure_coverage(minilm, CHINESE)
    assert cov.warning("minilm-l6", 0.99) is None  # threshold above the rate


def test_warning_names_model_and_suggests_chinese_model(minilm):
    msg = measure_coverage(minilm, CHINESE).warning("minilm-l6", 0.02)
    assert msg is not None
    assert msg.startswith("minilm-l6 ")
    assert "han" in msg
    assert "bert-base-chinese" in msg and "multilingual-e5-small" in msg and "leave --model out" in msg
    assert "extend_vocab" in msg


def test_warning_suggests_multilingual_for_other_scripts(minilm):
    # Thai is missing from MiniLM's vocabulary
    cov = measure_coverage(minilm, ["สวัสดีครับ ขอบคุณมาก", "อาหารอร่อยมาก"])
    assert cov.unk_rate > 0.02
    msg = cov.warning("my-model", 0.02)
    assert msg is not None and "my-model" in msg and "multilingual-e5-small" in msg
    assert "bert-base-chinese" not in msg


def test_warning_for_the_multilingual_model_does_not_suggest_itself(minilm):
    cov = measure_coverage(minilm, ["สวัสดีครับ ขอบคุณมาก", "อาหารอร่อยมาก"])  # any high [UNK] rate will do
    for name in ("multilingual-e5-small", "me5-small"):
        msg = cov.warning(name, 0.02)
        assert msg.startswith(f"{name} was not pretrained") and "multilingual-e5-small (" not in msg
        assert "a model pretrained on this script" in msg


def test_mixed_text_with_tiny_tokenizer(tiny_tok):
    cov = measure_coverage(tiny_tok, ["the movie was 好看", "great food 棒"])
    assert cov.unk_tokens == 3
    assert set(cov.missing) == {"好", "看", "棒"}
    assert 0 < cov.script_share["han"] < 0.5
    assert cov.script_share["latin"] > 0.5


def test_missing_counts_occurrences(tiny_tok):
    cov = measure_coverage(tiny_tok, ["好 好 好", "好 看"])
    assert cov.missing["好"] == 4 and cov.missing["看"] == 1
    assert cov.missing.most_common(1)[0][0] == "好"


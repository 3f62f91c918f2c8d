"""Model-free data checks: normalisation, exact and near duplicates, conflicts, leakage, empty rows, encoding,
scripts, label balance."""
from __future__ import annotations

import json
import random

import pytest

from tuneforge.data.quality import check_splits, encoding_problems, imbalance_ratio, is_empty, label_counts, normalize_for_dedup
from tuneforge.errors import UserError

WOODEN = "the acting was wooden and the plot made no sense at all"
TRAIN = [
    ("The film was great fun", "pos"),                  # row 1
    ("the  film was great fun!", "pos"),                # row 2: exact duplicate of row 1 after normalisation
    ("a dull and boring movie", "neg"),                 # row 3
    ("A dull and boring movie.", "pos"),                # row 4: same text, other label → conflict (and a dup)
    ("   ", "neg"),                                     # row 5: empty
    ("cafÃ© was lovely", "pos"),                        # row 6: mojibake
    ("我很喜欢这部电影，演员很好", "pos"),               # row 7: Chinese
    (WOODEN, "neg"),                                    # row 8
    (WOODEN + " really", "neg"),                        # row 9: near duplicate of row 8 (Jaccard 0.88)
    ("the soundtrack alone is worth the ticket", "pos"),  # row 10
    ("a tedious mess from start to finish", "neg"),     # row 11
    ("sharp writing and a warm heart", "pos"),          # row 12
]
VALIDATION = [
    ("a DULL and boring movie !", "neg"),               # exact leak of rows 3/4
    (WOODEN + " honestly", "neg"),                      # near leak of row 8
    ("nothing here resembles the training data", "pos"),
]


def _result(**kw) -> dict:
    splits = {"train": tuple(map(list, zip(*TRAIN))), "validation": tuple(map(list, zip(*VALIDATION)))}
    return check_splits(splits, **kw)


def test_normalize_for_dedup():
    assert normalize_for_dedup("  The  Film\twas GREAT fun!! ") == "the film was great fun"
    assert normalize_for_dedup("« Ｆｕｌｌ width »") == "full width"  # NFKC + punctuation stripped at the ends
    assert normalize_for_dedup("don't stop") == "don't stop"  # inner punctuation is kept
    assert normalize_for_dedup("...") == ""


def test_is_empty():
    assert is_empty("") and is_empty("  \t\n") and is_empty("\u200b\ufeff ") and is_empty(None)
    assert not is_empty(" a ")


@pytest.mark.parametrize("text,kind", [
    ("cafÃ© was lovely", "mojibake"), ("itâ€™s fine", "mojibake"), ("Â£5 only", "mojibake"),
    ("bad \ufffd byte", "replacement"), ("bell \x07 here", "control"), ("c1 \x85 here", "control"),
    ("lone \ud800 half", "surrogate")])
def test_encoding_problems_found(text, kind):
    assert any(kind in p for p in encoding_problems(text)), encoding_problems(text)


@pytest.mark.parametrize("text", ["café naïve Ångström", "tabs\tand\nnewlines", "日本語のテキスト", "it’s “quoted”",
                                  "ÀÉÎ capitals", "Ãbc"])
def test_encoding_clean_texts_pass(text):
    assert encoding_problems(text) == []


def test_label_counts_and_imbalance():
    counts = label_counts(["a"] * 6 + ["b"] * 2 + [["a", "c"]])
    assert counts == {"a": 7, "b": 2, "c": 1}
    assert imbalance_ratio({"a": 6, "b": 2}) == 3.0
    assert imbalance_ratio({"a": 6}) is None


def test_exact_duplicates_and_conflicts():
    train = _result()["splits"]["train"]
    dup = train["duplicates"]
    assert (dup["count"], dup["groups"]) == (2, 2)
    assert sorted(tuple(e["rows"]) for e in dup["examples"]) == [(1, 2), (3, 4)]
    conf = train["conflicts"]
    assert (conf["count"], conf["rows"]) == (1, 2)
    assert conf["examples"][0]["labels"] == {"neg": [3], "pos": [4]}


def test_near_duplicates_and_threshold():
    near = _result()["splits"]["train"]["near_duplicates"]
    assert (near["count"], near["groups"]) == (1, 1)
    members = near["examples"][0]["members"]
    assert [m["row"] for m in members] == [8, 9]
    assert 0.8 <= members[1]["similarity_to_first"] < 0.95
    assert _result(near_threshold=0.95)["splits"]["train"]["near_duplicates"]["count"] == 0


def test_leakage_exact_and_near():
    leak = _result()["leakage"]["validation"]
    assert (leak["count"], leak["exact"], leak["near"]) == (2, 1, 1)
    by_kind = {e["kind"]: e for e in leak["examples"]}
    assert by_kind["exact"]["row"] == 1 and by_kind["exact"]["train_row"] in (3, 4)
    assert by_kind["near"]["row"] == 2 and by_kind["near"]["train_row"] == 8
    assert 0.8 <= by_kind["near"]["similarity"] < 1
    only_exact = _result(near=False)
    assert only_exact["leakage"]["validation"]["count"] == 1 and "near_duplicates" not in only_exact["splits"]["train"]


def test_empty_encoding_scripts_labels_and_problems():
    r = _result()
    train = r["splits"]["train"]
    assert train["empty"] == {"count": 1, "rows": [5]}
    assert train["encoding"]["count"] == 1 and train["encoding"]["examples"][0]["row"] == 6
    share = train["scripts"]["share"]
    # the report rounds shares to 4 decimals: within half a unit of the 4th
    assert share["han"] == pytest.approx(1 / 11, abs=5e-5) and share["latin"] == pytest.approx(10 / 11, abs=5e-5)
    assert train["labels"]["counts"] == {"pos": 7, "neg": 5} and train["labels"]["imbalance_ratio"] == 1.4
    assert r["problems"] == {"duplicates": 2, "near_duplicates": 1, "conflicts": 1, "leakage": 2, "empty": 1,
                             "encoding": 1}
    json.dumps(r)  # JSON-ready


def test_examples_are_capped():
    texts = [f"copy {i % 30}" for i in range(600)]
    r = check_splits({"train": (texts, ["a"] * 300 + ["b"] * 300)}, near=False)
    dup = r["splits"]["train"]["duplicates"]
    assert dup["count"] == 570 and len(dup["examples"]) == 10 and all(len(e["rows"]) <= 10 for e in dup["examples"])
    conf = r["splits"]["train"]["conflicts"]
    assert conf["count"] == 30 and len(conf["examples"]) == 10


def test_near_duplicates_at_scale_find_planted_pairs():
    """3,000 random sentences plus 30 lightly edited copies: exactly the 30 pairs are found."""
    rng = random.Random(0)
    vocab = [f"w{i}{chr(97 + i % 26)}" for i in range(3000)]
    base = [" ".join(rng.sample(vocab, 14)) for _ in range(3000)]
    planted = [base[i * 50] + " zz" for i in range(30)]
    r = check_splits({"train": (base + planted, ["x"] * 3030)})
    near = r["splits"]["train"]["near_duplicates"]
    assert (near["count"], near["groups"]) == (30, 30)
    assert {m["row"] for e in near["examples"] for m in e["members"]} <= {i * 50 + 1 for i in range(30)} | set(range(3001, 3031))


def test_bad_threshold_is_a_user_error():
    with pytest.raises(UserError, match="threshold"):
        check_splits({"train": (["a b c"], ["x"])}, near_threshold=1.5)

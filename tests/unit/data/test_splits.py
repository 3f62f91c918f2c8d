"""Splits: held-out splits carved from train are stratified, seeded, disjoint and complete."""
from __future__ import annotations

from collections import Counter

import pytest

from conftest import write_csv
from tuneforge.config import DataConfig
from tuneforge.data.splits import load_labelled, load_splits, split_record
from tuneforge.errors import UserError

N = 200
PROPORTIONS = {"a": 0.6, "b": 0.3, "c": 0.1}


def _rows(n=N):
    labels = ["a"] * int(n * 0.6) + ["b"] * int(n * 0.3) + ["c"] * int(n * 0.1)
    return [(f"text number {i}", lab) for i, lab in enumerate(labels)]


@pytest.fixture
def train_csv(tmp_path):
    return write_csv(tmp_path / "train.csv", _rows())


def _cfg(train, **kw):
    return DataConfig(train=str(train), validation_fraction=0.1, test_fraction=0.1, **kw)


def test_carved_splits_are_disjoint_and_cover_all_rows(train_csv):
    splits = load_splits(_cfg(train_csv))
    assert set(splits) == {"train", "validation", "test"}
    rows = {name: set(s.rows) for name, s in splits.items()}
    assert not rows["train"] & rows["validation"]
    assert not rows["train"] & rows["test"]
    assert not rows["validation"] & rows["test"]
    assert rows["train"] | rows["validation"] | rows["test"] == set(range(N))
    assert len(splits["test"].texts) == 20 and len(splits["validation"].texts) == 20
    assert len(splits["train"].texts) == 160
    # texts/labels follow their row numbers
    for s in splits.values():
        for row, text, lab in zip(s.rows, s.texts, s.labels):
            assert text == f"text number {row}"
            assert lab == _rows()[row][1]


def test_carved_splits_are_stratified(train_csv):
    splits = load_splits(_cfg(train_csv))
    for s in splits.values():
        counts = Counter(s.labels)
        for label, share in PROPORTIONS.items():
            assert abs(counts[label] - share * len(s.labels)) <= 1, (s.name, counts)


def test_same_seed_same_rows_different_seed_different_rows(train_csv):
    a = load_splits(_cfg(train_csv, split_seed=5))
    b = load_splits(_cfg(train_csv, split_seed=5))
    c = load_splits(_cfg(train_csv, split_seed=6))
    for name in a:
        assert a[name].rows == b[name].rows
    assert a["test"].rows != c["test"].rows
    assert a["validation"].rows != c["validation"].rows


def test_given_files_are_not_carved(tmp_path, train_csv):
    val = write_csv(tmp_path / "val.csv", [("v1", "a"), ("v2", "b")])
    test = write_csv(tmp_path / "test.csv", [("t1", "a"), ("t2", "c"), ("t3", "b")])
    splits = load_splits(_cfg(train_csv).model_copy(update={"validation": str(val), "test": str(test)}))
    assert len(splits["train"].texts) == N
    assert splits["validation"].texts == ["v1", "v2"] and splits["validation"].source == str(val)
    assert splits["test"].rows == [0, 1, 2]


def test_given_test_only_carves_validation_fraction_of_whole(tmp_path, train_csv):
    test = write_csv(tmp_path / "test.csv", [("t1", "a"), ("t2", "b")])
    splits = load_splits(_cfg(train_csv).model_copy(update={"test": str(test)}))
    assert len(splits["validation"].texts) == 20
    assert len(splits["train"].texts) == 180


def test_zero_test_fraction_means_no_test(train_csv):
    splits = load_splits(DataConfig(train=str(train_csv), validation_fraction=0.2, test_fraction=0))
    assert set(splits) == {"train", "validation"}
    assert len(splits["validation"].texts) == 40


def test_split_record(train_csv):
    splits = load_splits(_cfg(train_csv))
    rec = split_record(splits)
    assert set(rec) == {"train", "validation", "test"}
    assert rec["train"]["source"] == str(train_csv)
    assert rec["test"]["source"] == f"{train_csv}[test split]"
    assert rec["validation"]["source"] == f"{train_csv}[validation split]"
    for name, s in splits.items():
        assert rec[name]["size"] == len(s.texts)
        assert rec[name]["rows"] == s.rows
        assert rec[name]["rows"] == sorted(rec[name]["rows"])


def test_too_few_rows(tmp_path):
    path = write_csv(tmp_path / "tiny.csv", [("x", "a"), ("y", "b"), ("z", "a")])
    with pytest.raises(UserError) as exc:
        load_splits(DataConfig(train=str(path)))
    assert "only 3 rows" in str(exc.value) and "--test FILE" in str(exc.value)


def test_no_train_file():
    with pytest.raises(UserError, match="no training data"):
        load_splits(DataConfig())


def test_load_labelled_errors_and_normalization(tmp_path):
    path = write_csv(tmp_path / "d.csv", [("Ｆｕｌｌ  width", "a"), ("ok", "b")])
    s = load_labelled(str(path), DataConfig(), "train")
    assert s.texts == ["Full width", "ok"] and s.labels == ["a", "b"] and s.rows == [0, 1]
    raw = load_labelled(str(path), DataConfig(normalize=False), "train")
    assert raw.texts[0] == "Ｆｕｌｌ  width"
    empty = write_csv(tmp_path / "e.csv", [])
    with pytest.raises(UserError, match="no data rows"):
        load_labelled(str(empty), DataConfig(), "train")
    blank = write_csv(tmp_path / "b.csv", [("ok", "a"), ("", "b")])
    with pytest.raises(UserError, match="row 2 has no text"):
        load_labelled(str(blank), DataConfig(), "train")
    with pytest.raises(UserError, match="no column 'label'"):
        load_labelled(str(write_csv(tmp_path / "c.csv", [("x", "a")], header=("text", "target"))), DataConfig(), "t")


def test_multi_label_split_covers_all_rows(tmp_path):
    rows = [(f"t{i}", ["a|b", "b", "c|a"][i % 3]) for i in range(60)]
    path = write_csv(tmp_path / "m.csv", rows)
    splits = load_splits(DataConfig(train=str(path), label_separator="|"))
    assert sorted(r for s in splits.values() for r in s.rows) == list(range(60))
    assert all(isinstance(x, list) for s in splits.values() for x in s.labels)


def test_text_column_alternatives_cover_files_with_different_headers(tmp_path, train_csv):
    """SST-2's train.tsv says `text`, its dev.tsv `sentence`: `text,sentence` reads both; a miss names both."""
    dev = write_csv(tmp_path / "dev.csv", [("a fine film", "positive"), ("a dull film", "negative")],
                    header=("sentence", "label"))
    cfg = DataConfig(train=str(train_csv), test=str(dev), text_column="text,sentence")
    splits = load_splits(cfg)
    assert splits["test"].texts == ["a fine film", "a dull film"]
    assert len(splits["train"].texts) > 0
    with pytest.raises(UserError, match=r"no column 'review' or 'body'.*Columns are: sentence, label"):
        load_labelled(str(dev), DataConfig(text_column="review,body"), "test")
    with pytest.raises(UserError, match="no column 'sentence'"):
        load_splits(DataConfig(train=str(train_csv), test=str(dev), text_column="sentence"))

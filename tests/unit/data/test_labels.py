"""Label spaces: parsing cells, stable ordering, encoding and clear errors."""
from __future__ import annotations

import numpy as np
import pytest

from tuneforge.data.labels import LabelSpace, parse_label, read_labels
from tuneforge.errors import UserError


def test_int_labels_sort_numerically_and_become_strings():
    labels = read_labels([10, 2, 1, 2, 10.0], "d.jsonl", "label", None)
    assert labels == ["10", "2", "1", "2", "10"]
    space = LabelSpace.from_labels(labels)
    assert space.names == ("1", "2", "10")  # not ("1", "10", "2")
    assert not space.multi_label
    assert space.id2label == {0: "1", 1: "2", 2: "10"}
    assert space.encode(labels).tolist() == [2, 1, 0, 1, 2]


def test_string_int_labels_from_csv_sort_numerically_with_negatives():
    space = LabelSpace.from_labels(["10", "2", "-1", "0"])
    assert space.names == ("-1", "0", "2", "10")


def test_string_labels_sort_alphabetically():
    space = LabelSpace.from_labels(["positive", "negative", "neutral", "negative"])
    assert space.names == ("negative", "neutral", "positive")
    assert space.label2id == {"negative": 0, "neutral": 1, "positive": 2}
    enc = space.encode(["positive", "negative"])
    assert enc.dtype == np.int64 and enc.tolist() == [2, 0]


def test_bool_and_numpy_scalars():
    assert parse_label(True, None) == "1"
    assert parse_label(np.int64(3), None) == "3"
    assert parse_label(np.bool_(False), None) == "0"
    assert parse_label(" pos ", None) == "pos"


def test_multi_label_from_lists():
    labels = read_labels([["a", "b"], ("c",), np.array(["b"])], "d", "label", None)
    assert labels == [["a", "b"], ["c"], ["b"]]
    space = LabelSpace.from_labels(labels)
    assert space.multi_label and space.names == ("a", "b", "c")
    enc = space.encode(labels)
    assert enc.dtype == np.float32
    assert enc.tolist() == [[1, 1, 0], [0, 0, 1], [0, 1, 0]]


def test_multi_label_from_json_list_strings():
    labels = read_labels(['["sports", "news"]', "[]", '["news"]'], "d.csv", "label", None)
    assert labels == [["sports", "news"], [], ["news"]]
    space = LabelSpace.from_labels(labels)
    assert space.multi_label and space.names == ("news", "sports")
    assert space.encode(labels).tolist() == [[1, 1], [0, 0], [1, 0]]


def test_bracketed_non_json_stays_a_string():
    assert parse_label("[not json", None) == "[not json"
    assert parse_label("[oops]", None) == "[oops]"


def test_multi_label_from_separator():
    labels = read_labels(["a|b", " c | a ", "b||"], "d.csv", "label", "|")
    assert labels == [["a", "b"], ["c", "a"], ["b"]]
    space = LabelSpace.from_labels(labels)
    assert space.multi_label
    assert space.encode(labels).sum(1).tolist() == [2, 2, 1]


def test_forced_multi_label_with_plain_strings():
    space = LabelSpace.from_labels(["a", "b", "a"], multi_label=True)
    assert space.multi_label
    assert space.encode(["a", "b"]).tolist() == [[1, 0], [0, 1]]


def test_unseen_label_names_label_and_path():
    space = LabelSpace.from_labels(["pos", "neg"])
    with pytest.raises(UserError) as exc:
        space.encode(["pos", "meh", "meh"], "val.csv")
    msg = str(exc.value)
    assert "val.csv" in msg and "'meh'" in msg and "2 rows" in msg and "neg, pos" in msg


def test_unseen_label_in_multi_label():
    space = LabelSpace.from_labels([["a"], ["b"]])
    with pytest.raises(UserError, match="'z'"):
        space.encode([["a", "z"]])


def test_list_label_for_single_label_model():
    space = LabelSpace.from_labels(["a", "b"])
    with pytest.raises(UserError, match="single-label"):
        space.encode([["a"]])


@pytest.mark.parametrize("missing", [None, "", "   ", float("nan")])
def test_missing_label_names_row(missing):
    with pytest.raises(UserError) as exc:
        read_labels(["a", "b", missing, "a"], "train.csv", "target", None)
    msg = str(exc.value)
    assert "train.csv" in msg and "row 3" in msg and "'target'" in msg


def test_single_class_is_an_error():
    with pytest.raises(UserError, match="only one label \\(yes\\)"):
        LabelSpace.from_labels(["yes", "yes", "yes"])


def test_class_counts_single_and_multi():
    space = LabelSpace.from_labels(["a", "b", "c", "a", "a"])
    counts = space.class_counts(space.encode(["a", "b", "a", "a", "b"]))
    assert counts.tolist() == [3.0, 2.0, 0.0]  # zero-count class kept
    multi = LabelSpace.from_labels([["a", "b"], ["b"], ["c"]])
    assert multi.class_counts(multi.encode([["a", "b"], ["b"], ["b", "c"]])).tolist() == [1, 3, 1]


def test_from_model_config_round_trip():
    from transformers import BertConfig

    cfg = BertConfig(id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1},
                     problem_type="multi_label_classification")
    space = LabelSpace.from_model_config(cfg)
    assert space.names == ("neg", "pos") and space.multi_label
    assert not LabelSpace.from_model_config(BertConfig(id2label={0: "x", 1: "y"})).multi_label


def test_float_non_integer_label_kept_as_text():
    assert parse_label(0.5, None) == "0.5"
    assert parse_label(2.0, None) == "2"
    assert parse_label(-3, None) == "-3"


def test_odd_numeric_looking_labels_sort_without_crashing():
    from tuneforge.data.labels import LabelSpace

    assert LabelSpace.from_labels(["a", "--1", "²"]).names == ("--1", "a", "²")
    assert LabelSpace.from_labels(["01", "1", "2"]).names == ("01", "1", "2")  # stable, not hash order

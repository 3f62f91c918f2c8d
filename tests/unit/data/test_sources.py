"""Reading tables: every supported format, and one-line UserErrors for every user mistake."""
from __future__ import annotations


import pandas as pd
import pytest

from tuneforge.data.sources import clean_text, file_sha256, read_table, read_texts, require_columns
from tuneforge.errors import UserError

ROWS = [("a good movie", "positive"), ("bad, slow service", "negative"), ("NA", "neutral")]


def _records():
    return [{"text": t, "label": lab} for t, lab in ROWS]


def _assert_rows(df: pd.DataFrame):
    assert list(df["text"]) == [t for t, _ in ROWS]
    assert list(df["label"]) == [lab for _, lab in ROWS]


def test_read_csv_keeps_na_as_text(tmp_path):
    from conftest import write_csv

    path = write_csv(tmp_path / "d.csv", ROWS + [("null", "neutral")])
    df = read_table(path)
    assert list(df.columns) == ["text", "label"]
    assert df["text"].tolist()[2:] == ["NA", "null"]
    assert not df.isna().any().any()


def test_read_csv_with_quoted_comma_and_newline(tmp_path):
    from conftest import write_csv

    path = write_csv(tmp_path / "d.csv", [("hello, world", "a"), ("two\nlines", "b")])
    df = read_table(path)
    assert df["text"].tolist() == ["hello, world", "two\nlines"]


def test_read_tsv_glue_style_with_literal_quote(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_text('sentence\tlabel\nit\'s a "great movie\t1\n"quoted" start\t0\nplain NA\t1\n', encoding="utf-8")
    df = read_table(path)
    assert df["sentence"].tolist() == ['it\'s a "great movie', '"quoted" start', "plain NA"]
    assert df["label"].tolist() == ["1", "0", "1"]


def test_read_jsonl_skips_blank_lines_and_keeps_types(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "x", "label": 2}\n\n{"text": "y", "label": ["a", "b"]}\n', encoding="utf-8")
    df = read_table(path)
    assert df["text"].tolist() == ["x", "y"]
    assert df["label"].tolist()[0] == 2
    assert list(df["label"].tolist()[1]) == ["a", "b"]


def test_read_parquet(tmp_path):
    path = tmp_path / "d.parquet"
    pd.DataFrame(_records()).to_parquet(path)
    _assert_rows(read_table(path))


def test_read_txt_one_text_per_nonblank_line(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("first\n\n  \nsecond\n", encoding="utf-8")
    assert read_table(path)["text"].tolist() == ["first", "second"]


def test_read_saved_dataset_folder(tmp_path):
    from datasets import Dataset

    folder = tmp_path / "ds"
    Dataset.from_list(_records()).save_to_disk(str(folder))
    _assert_rows(read_table(folder))


def test_read_saved_datasetdict_prefers_train(tmp_path):
    from datasets import Dataset, DatasetDict

    folder = tmp_path / "dd"
    DatasetDict({"validation": Dataset.from_list([{"text": "v", "label": "x"}]),
                 "train": Dataset.from_list(_records())}).save_to_disk(str(folder))
    _assert_rows(read_table(folder))


def test_read_datasetdict_without_train_uses_first_split(tmp_path):
    from datasets import Dataset, DatasetDict

    folder = tmp_path / "dd"
    DatasetDict({"test": Dataset.from_list(_records())}).save_to_disk(str(folder))
    _assert_rows(read_table(folder))


def test_folder_that_is_not_a_dataset(tmp_path):
    (tmp_path / "junk").mkdir()
    with pytest.raises(UserError, match="not a saved `datasets` folder"):
        read_table(tmp_path / "junk")


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".txt"])
def test_non_utf8_names_file_and_line(tmp_path, suffix):
    path = tmp_path / f"bad{suffix}"
    sep = "\t" if suffix == ".tsv" else ","
    head = '{"text": "ok", "label": "a"}\n' * 3 if suffix == ".jsonl" else f"text{sep}label\nok{sep}a\nok{sep}b\n"
    path.write_bytes(head.encode() + "caf\xe9 au lait".encode("latin-1") + b"\nmore\n")
    with pytest.raises(UserError) as exc:
        read_table(path)
    msg = str(exc.value)
    assert f"{path}:4:" in msg
    assert "UTF-8" in msg and "0xe9" in msg


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="file not found") as exc:
        read_table(tmp_path / "nope.csv")
    assert "nope.csv" in str(exc.value)


def test_empty_csv(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(UserError, match="empty") as exc:
        read_table(path)
    assert str(path) in str(exc.value)


def test_bad_jsonl_line_number(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": 1}\n\n{"text": "b", "label": \n', encoding="utf-8")
    with pytest.raises(UserError, match=r"d\.jsonl:3: invalid JSON"):
        read_table(path)


def test_jsonl_line_that_is_not_an_object(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a"}\n["text", "b"]\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"d\.jsonl:2: each line must be a JSON object"):
        read_table(path)


def test_unsupported_suffix(tmp_path):
    path = tmp_path / "d.xlsx"
    path.write_bytes(b"xx")
    with pytest.raises(UserError) as exc:
        read_table(path)
    assert "'.xlsx'" in str(exc.value) and ".csv" in str(exc.value) and ".parquet" in str(exc.value)


def test_corrupt_parquet(tmp_path):
    path = tmp_path / "d.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(UserError, match="cannot read Parquet"):
        read_table(path)


def test_require_columns_lists_existing_columns(tmp_path):
    df = pd.DataFrame({"sentence": ["x"], "target": ["y"]})
    require_columns(df, "d.csv", ["sentence", "target"])  # no error
    with pytest.raises(UserError) as exc:
        require_columns(df, "d.csv", ["sentence", "label"])
    msg = str(exc.value)
    assert "no column 'label'" in msg and "sentence, target" in msg and "d.csv" in msg


def test_clean_text_nfkc_and_whitespace():
    assert clean_text("ＧＯＯＤ　ｍｏｖｉｅ１２３") == "GOOD movie123"
    assert clean_text("  a\t\tb \n\n c  ") == "a b c"
    assert clean_text("ﬁne") == "fine"  # ligature
    assert clean_text("Keep, CASE!") == "Keep, CASE!"
    assert clean_text("NA") == "NA"


def test_read_texts_normalizes_and_reports_empty_rows(tmp_path):
    from conftest import write_csv

    path = write_csv(tmp_path / "d.csv", [("Ｈｉ  there", "a"), ("NA", "b")])
    assert read_texts(path, "text") == ["Hi there", "NA"]
    assert read_texts(path, "text", normalize=False) == ["Ｈｉ  there", "NA"]
    bad = write_csv(tmp_path / "bad.csv", [("ok", "a"), ("   ", "b")])
    with pytest.raises(UserError, match="row 2 has no text in column 'text'"):
        read_texts(bad, "text")
    with pytest.raises(UserError, match="no column 'sentence'"):
        read_texts(path, "sentence")


def test_file_sha256_changes_with_content(tmp_path):
    a = tmp_path / "a.csv"
    a.write_text("x", encoding="utf-8")
    h1 = file_sha256(a)
    assert len(h1) == 64
    a.write_text("y", encoding="utf-8")
    assert file_sha256(a) != h1
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "1").write_text("x", encoding="utf-8")
    assert file_sha256(folder) == h1  # a folder hashes its files' bytes in order


def test_json_array_file(tmp_path):
    import json as _json

    from tuneforge.data.sources import read_table

    p = tmp_path / "d.json"
    p.write_text(_json.dumps([{"text": "a", "label": 1}, {"text": "b", "label": 0}]), encoding="utf-8")
    df = read_table(p)
    assert list(df["text"]) == ["a", "b"]


def test_jsonl_lone_surrogate_names_line_and_field(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"text": "fine \\ud83d\\ude00", "label": "a"}\n{"text": "half \\ud800 char", "label": "b"}\n',
                 encoding="utf-8")
    with pytest.raises(UserError, match=r"d\.jsonl:2: field 'text' holds a lone surrogate"):
        read_table(p)
    p.write_text('{"text": "fine \\ud83d\\ude00", "label": "a"}\n', encoding="utf-8")  # a valid pair is one emoji
    assert read_table(p)["text"][0] == "fine \U0001F600"

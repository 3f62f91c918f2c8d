"""Pretraining corpora: source expansion, streaming per format, cleaning, dedup, filters and their counts."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuneforge.data.corpus import (
    CleanStats,
    clean_line,
    expand_sources,
    iter_clean_texts,
    stream_source,
)
from tuneforge.errors import UserError


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


# --- expand_sources

def test_globs_are_sorted_and_patterns_keep_their_order(tmp_path):
    for name in ["c.txt", "a.txt", "b.txt", "z.raw"]:
        write_lines(tmp_path / name, ["x"])
    found = expand_sources([str(tmp_path / "z.raw"), str(tmp_path / "*.txt")])
    assert found == [tmp_path / "z.raw", tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "c.txt"]
    assert all(isinstance(p, Path) for p in found)


def test_folders_are_sources(tmp_path):
    (tmp_path / "ds").mkdir()
    assert expand_sources([str(tmp_path / "ds")]) == [tmp_path / "ds"]


def test_missing_file_is_a_user_error_naming_it(tmp_path):
    write_lines(tmp_path / "a.txt", ["x"])
    with pytest.raises(UserError, match="nope.txt"):
        expand_sources([str(tmp_path / "a.txt"), str(tmp_path / "nope.txt")])


def test_glob_matching_nothing_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match=r"\*\.jsonl"):
        expand_sources([str(tmp_path / "*.jsonl")])


def test_no_sources_is_a_user_error():
    with pytest.raises(UserError, match="corpus"):
        expand_sources([])


# --- streaming per format

@pytest.mark.parametrize("suffix", [".raw", ".en", ".txt", ""])
def test_plain_text_is_one_text_per_line(tmp_path, suffix):
    p = write_lines(tmp_path / f"wiki{suffix}", ["first line", "", "  second, with spaces  ", "third"])
    assert [clean_line(t) for t in stream_source(p, "text")] == ["first line", "", "second, with spaces", "third"]
    assert list(iter_clean_texts([p])) == ["first line", "second, with spaces", "third"]


def test_plain_text_is_streamed_lazily(tmp_path):
    p = tmp_path / "big.txt"
    p.write_bytes(b"ok\n" + b"\xff\xfe broken\n")
    it = stream_source(p, "text")
    assert next(it) == "ok\n"  # the first line comes out before the bad one is read
    with pytest.raises(UserError):
        next(it)


def test_invalid_utf8_names_the_line(tmp_path):
    p = tmp_path / "latin1.txt"
    p.write_bytes("one\ntwo\ncaf\xe9 three\nfour\n".encode("latin-1"))
    with pytest.raises(UserError, match=r"latin1\.txt:3: not valid UTF-8 \(byte 0xe9\)"):
        list(iter_clean_texts([p]))


def test_jsonl_text_column(tmp_path):
    p = tmp_path / "c.jsonl"
    rows = [{"text": "alpha", "id": 1}, {"body": "x", "text": "beta"}, {"text": None}, {"text": 5}, {"text": "gamma"}]
    p.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows[:2]) + "\n\n"
                 + "\n".join(json.dumps(r) for r in rows[2:]) + "\n", encoding="utf-8")
    assert list(stream_source(p, "text")) == ["alpha", "beta", "gamma"]  # non-strings skipped, blank lines too
    assert list(stream_source(write_lines(tmp_path / "d.jsonl", ['{"body": "delta"}']), "body")) == ["delta"]


def test_jsonl_bad_line_names_file_and_line(tmp_path):
    p = write_lines(tmp_path / "bad.jsonl", ['{"text": "ok"}', "", '{"text": "broken'])
    with pytest.raises(UserError, match=r"bad\.jsonl:3: invalid JSON"):
        list(stream_source(p, "text"))


def test_jsonl_missing_column_names_file_and_line(tmp_path):
    p = write_lines(tmp_path / "col.jsonl", ['{"text": "ok"}', '{"body": "no text"}'])
    with pytest.raises(UserError, match=r"col\.jsonl:2: no 'text' field"):
        list(stream_source(p, "text"))


def test_csv_and_tsv_column(tmp_path):
    csv_path = tmp_path / "t.csv"
    csv_path.write_text('id,content\n1,"hello, world"\n2,second row\n', encoding="utf-8")
    assert list(stream_source(csv_path, "content")) == ["hello, world", "second row"]
    tsv_path = tmp_path / "t.tsv"
    tsv_path.write_text("content\tlabel\nfirst tab row\tx\n\"quoted\" stays\ty\n", encoding="utf-8")
    assert list(stream_source(tsv_path, "content")) == ["first tab row", '"quoted" stays']
    with pytest.raises(UserError, match="text"):
        list(stream_source(csv_path, "text"))


def test_parquet_column(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    p = tmp_path / "t.parquet"
    pd.DataFrame({"text": ["one", "two"], "n": [1, 2]}).to_parquet(p)
    assert list(stream_source(p, "text")) == ["one", "two"]


def test_datasets_folder(tmp_path):
    from datasets import Dataset, DatasetDict

    folder = tmp_path / "ds"
    Dataset.from_dict({"text": ["first", None, "third"], "n": [1, 2, 3]}).save_to_disk(str(folder))
    assert list(stream_source(folder, "text")) == ["first", "third"]
    with pytest.raises(UserError, match="no column 'body'"):
        list(stream_source(folder, "body"))

    dd = tmp_path / "dd"
    DatasetDict({"validation": Dataset.from_dict({"text": ["val"]}),
                 "train": Dataset.from_dict({"text": ["train a", "train b"]})}).save_to_disk(str(dd))
    assert list(stream_source(dd, "text")) == ["train a", "train b"]


def test_folder_that_is_not_a_dataset(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.txt").write_text("x", encoding="utf-8")
    with pytest.raises(UserError, match="not a saved `datasets` folder"):
        list(stream_source(tmp_path / "junk", "text"))


# --- clean_line

def test_clean_line_nfkc():
    assert clean_line("ＡＢＣ１") == "ABC1"
    assert clean_line("ﬁne") == "fine"
    assert clean_line("e\u0301") == "é"  # composed


def test_clean_line_removes_control_characters_and_collapses_whitespace():
    assert clean_line("a\x00b\x07c\x1bd\x7fe\x9ff") == "a b c d e f"
    assert clean_line("  tab\there \r\n new\u3000line  ") == "tab here new line"
    assert clean_line("\x00\x01 \t") == ""


def test_clean_line_without_normalize_only_strips():
    assert clean_line("  ＡＢＣ  a\x00b  ", normalize=False) == "ＡＢＣ  a\x00b"


# --- iter_clean_texts

def test_iter_clean_texts_counts(tmp_path):
    a = write_lines(tmp_path / "a.txt", ["hello world", "", "   ", "hi", "hello   world", "x" * 60, "ＡＢＣ１ abcdef",
                                         "another text"])
    b = write_lines(tmp_path / "b.txt", ["hello world", "ABC1 abcdef", "brand new line", "\x00\x01"])
    stats = CleanStats()
    out = list(iter_clean_texts([a, b], min_chars=5, max_chars=50, stats=stats))
    assert out == ["hello world", "ABC1 abcdef", "another text", "brand new line"]
    assert (stats.read, stats.kept, stats.empty, stats.too_short, stats.too_long, stats.duplicates) == (12, 4, 3, 1, 1, 3)
    assert stats.read == stats.kept + stats.empty + stats.too_short + stats.too_long + stats.duplicates
    assert stats.chars == sum(len(t) for t in out)
    assert stats.per_source == {str(a): 3, str(b): 1}


def test_iter_clean_texts_without_dedup_or_normalize(tmp_path):
    a = write_lines(tmp_path / "a.txt", ["same text", "same text", "ＡＢＣ１ wide"])
    stats = CleanStats()
    assert list(iter_clean_texts([a, a], dedup=False, stats=stats)) == ["same text", "same text", "ABC1 wide"] * 2
    assert stats.duplicates == 0 and stats.kept == 6
    assert list(iter_clean_texts([a], normalize=False)) == ["same text", "ＡＢＣ１ wide"]


def test_iter_clean_texts_length_bounds_are_inclusive(tmp_path):
    a = write_lines(tmp_path / "a.txt", ["1234", "12345", "1234567890", "12345678901"])
    stats = CleanStats()
    assert list(iter_clean_texts([a], min_chars=5, max_chars=10, stats=stats)) == ["12345", "1234567890"]
    assert (stats.too_short, stats.too_long) == (1, 1)


def test_iter_clean_texts_mixes_formats_in_order(tmp_path):
    from datasets import Dataset

    txt = write_lines(tmp_path / "a.txt", ["from text file", "shared line"])
    jsonl = write_lines(tmp_path / "b.jsonl", [json.dumps({"text": "shared line"}), json.dumps({"text": "from jsonl"})])
    folder = tmp_path / "c"
    Dataset.from_dict({"text": ["from datasets", "from text file"]}).save_to_disk(str(folder))
    stats = CleanStats()
    out = list(iter_clean_texts(expand_sources([str(txt), str(jsonl), str(folder)]), stats=stats))
    assert out == ["from text file", "shared line", "from jsonl", "from datasets"]
    assert stats.duplicates == 2
    assert list(stats.per_source.values()) == [2, 1, 1]



def test_text_column_alternatives_in_every_corpus_format(tmp_path):
    """`--text-column text,sentence` takes the first name each source has, as for labelled tables."""
    from datasets import Dataset

    jsonl = write_lines(tmp_path / "a.jsonl", ['{"sentence": "one"}', '{"text": "two"}'])
    assert list(stream_source(jsonl, "text,sentence")) == ["one", "two"]
    table = tmp_path / "b.csv"
    table.write_text("sentence,label\nthree,x\n", encoding="utf-8")
    assert list(stream_source(table, "text,sentence")) == ["three"]
    folder = tmp_path / "ds"
    Dataset.from_dict({"sentence": ["four"]}).save_to_disk(str(folder))
    assert list(stream_source(folder, "text,sentence")) == ["four"]
    with pytest.raises(UserError, match=r"b\.csv: no column 'review' or 'body'"):
        list(stream_source(table, "review,body"))

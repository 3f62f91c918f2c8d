"""Parallel text: two line-aligned files or a table → aligned pairs. A pair with an empty side is dropped where it
stands (never shifting later lines), counted with its line number; misaligned files, a missing column, a prefix
without language codes are one-line UserErrors naming what to fix; held-out splits are carved from train, seeded."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuneforge.config.schema import DataConfig
from tuneforge.data.parallel import (
    ParallelSplit,
    load_parallel_splits,
    read_parallel_files,
    read_parallel_table,
    split_record,
)
from tuneforge.errors import UserError


def write(path: Path, lines: list[str], end: str = "\n") -> Path:
    path.write_text(end.join(lines) + end, encoding="utf-8")
    return path


def numbered(tmp_path: Path, n: int, prefix: str = "train", src: str = "en", tgt: str = "de") -> Path:
    """PREFIX.en / PREFIX.de with n pairs 'source i' / 'ziel i' (line i, 1-based)."""
    write(tmp_path / f"{prefix}.{src}", [f"source {i}" for i in range(1, n + 1)])
    write(tmp_path / f"{prefix}.{tgt}", [f"ziel {i}" for i in range(1, n + 1)])
    return tmp_path / prefix


def aligned(split: ParallelSplit) -> bool:
    """Every kept pair is still line i with line i, and `rows` says which i."""
    return all(s == f"source {r}" and t == f"ziel {r}" for s, t, r in zip(split.sources, split.targets, split.rows))


def test_misaligned_files_name_both_files_and_their_line_counts(tmp_path):
    a = write(tmp_path / "train.en", [f"s{i}" for i in range(1001)])
    b = write(tmp_path / "train.de", [f"t{i}" for i in range(1000)])
    with pytest.raises(UserError) as exc:
        read_parallel_files(a, b)
    msg = str(exc.value)
    assert f"{a} has 1,001 lines but {b} has 1,000" in msg and "line-aligned" in msg and "\n" not in msg


def test_one_side_empty_lines_are_dropped_where_they_stand_and_counted(tmp_path):
    src = [f"source {i}" for i in range(1, 11)]
    tgt = [f"ziel {i}" for i in range(1, 11)]
    src[2] = ""  # line 3: empty source
    tgt[4] = "   "  # line 5: blank target
    src[6] = tgt[6] = ""  # line 7: both empty
    split = read_parallel_files(write(tmp_path / "a.en", src), write(tmp_path / "a.de", tgt))
    assert split.dropped == {"empty source": [3], "empty target": [5], "empty": [7]}
    assert split.rows == [1, 2, 4, 6, 8, 9, 10] and aligned(split)
    assert len(split.sources) == len(split.targets) == 7
    assert split.source == f"{tmp_path / 'a.en'} + {tmp_path / 'a.de'}"


def test_only_newline_ends_a_line(tmp_path):
    """U+2028, U+0085 and form feeds inside a sentence are not line ends (str.splitlines would shift the file);
    CRLF, a byte order mark and blank lines at the end of a file are handled."""
    src = ["source 1", "source 2 \u2028with a separator", "source 3\x0c", "source 4\x85"]
    (tmp_path / "a.en").write_bytes(("\ufeff" + "\r\n".join(src) + "\r\n\r\n\n").encode("utf-8"))
    write(tmp_path / "a.de", ["ziel 1", "ziel 2", "ziel 3", "ziel 4"])
    split = read_parallel_files(tmp_path / "a.en", tmp_path / "a.de", normalize=False)
    assert split.sources == src and split.rows == [1, 2, 3, 4] and split.dropped == {}


def test_invalid_utf8_names_the_line(tmp_path):
    (tmp_path / "a.en").write_bytes(b"fine\nalso fine\ncaf\xe9\n")
    write(tmp_path / "a.de", ["a", "b", "c"])
    with pytest.raises(UserError, match=r"a\.en:3: not valid UTF-8"):
        read_parallel_files(tmp_path / "a.en", tmp_path / "a.de")


def test_normalize_cleans_whitespace_and_nfkc_but_keeps_case(tmp_path):
    a = write(tmp_path / "a.en", ["  Hello\t  World ", "ＡＢＣ ﬁne"])
    b = write(tmp_path / "a.de", ["Hallo  Welt", "abc"])
    assert read_parallel_files(a, b).sources == ["Hello World", "ABC fine"]
    assert read_parallel_files(a, b, normalize=False).sources == ["  Hello\t  World ", "ＡＢＣ ﬁne"]


def test_references_keep_the_file_text_that_bleu_is_scored_on(tmp_path):
    """The model trains on cleaned targets, but BLEU is scored against the references as the file has them
    (sacreBLEU's rule: raw references), so full-width punctuation is not quietly made half-width; take() keeps them."""
    a = write(tmp_path / "a.en", ["Hello", "Fine", "Three"])
    b = write(tmp_path / "a.zh", ["你好！", "  很好，  谢谢 ", "三"])
    split = read_parallel_files(a, b)
    assert split.targets == ["你好!", "很好, 谢谢", "三"]
    assert split.references == ["你好！", "很好，  谢谢", "三"]
    assert split.take([2, 0]).references == ["三", "你好！"]


def test_missing_file_and_empty_files(tmp_path):
    b = write(tmp_path / "a.de", ["x"])
    with pytest.raises(UserError, match=r"nope\.en: file not found"):
        read_parallel_files(tmp_path / "nope.en", b)
    (tmp_path / "e.en").write_text("", encoding="utf-8")
    (tmp_path / "e.de").write_text("\n", encoding="utf-8")
    with pytest.raises(UserError, match="empty"):
        read_parallel_files(tmp_path / "e.en", tmp_path / "e.de")


def test_table_reads_columns_and_drops_empty_rows_with_row_numbers(tmp_path):
    rows = [{"en": "source 1", "de": "ziel 1"}, {"en": "", "de": "ziel 2"}, {"en": "source 3", "de": None},
            {"en": "source 4", "de": "ziel 4"}]
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    split = read_parallel_table(path, "en", "de")
    assert split.rows == [1, 4] and aligned(split)
    assert split.dropped == {"empty source": [2], "empty target": [3]} and split.source == str(path)


def test_missing_column_names_file_column_columns_and_a_guess(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("source,targets\nhello,hallo\n", encoding="utf-8")
    with pytest.raises(UserError) as exc:
        read_parallel_table(path, "source", "target")
    msg = str(exc.value)
    assert str(path) in msg and "no column 'target'" in msg and "Columns are: source, targets" in msg
    assert "Did you mean 'targets'?" in msg and "--target-column" in msg


def test_prefix_with_languages_reads_the_two_files_and_carves_held_out_splits(tmp_path):
    prefix = numbered(tmp_path, 100)
    numbered(tmp_path, 20, prefix="val")
    cfg = DataConfig(train=str(prefix), validation=str(tmp_path / "val"), source_lang="en", target_lang="de",
                     test_fraction=0.1, split_seed=7)
    splits = load_parallel_splits(cfg)
    assert list(splits) == ["train", "validation", "test"]
    assert len(splits["validation"]) == 20 and splits["validation"].source.endswith("val.en + " + str(tmp_path / "val.de"))
    train, test = splits["train"], splits["test"]
    assert len(test) == 10 and len(train) == 90 and all(aligned(s) for s in splits.values())
    assert sorted(train.rows + test.rows) == list(range(1, 101))  # disjoint, nothing lost, original line numbers
    assert test.rows != list(range(1, 11)) and test.source.endswith("[test split]")
    again = load_parallel_splits(cfg)
    assert again["test"].rows == test.rows  # seeded
    other = load_parallel_splits(cfg.model_copy(update={"split_seed": 8}))
    assert other["test"].rows != test.rows


def test_no_held_out_files_carves_validation_and_test_from_train(tmp_path):
    a, b = numbered(tmp_path, 200).with_suffix(".en"), tmp_path / "train.de"
    splits = load_parallel_splits(DataConfig(source_file=str(a), target_file=str(b), validation_fraction=0.1,
                                             test_fraction=0.1))
    sizes = {k: len(v) for k, v in splits.items()}
    assert sizes == {"train": 160, "validation": 20, "test": 20}
    rows = [r for s in splits.values() for r in s.rows]
    assert sorted(rows) == list(range(1, 201)) and all(aligned(s) for s in splits.values())
    no_test = load_parallel_splits(DataConfig(source_file=str(a), target_file=str(b), test_fraction=0))
    assert list(no_test) == ["train", "validation"] and len(no_test["validation"]) == 20


def test_dropped_lines_stay_with_train_after_carving(tmp_path):
    numbered(tmp_path, 50)
    lines = (tmp_path / "train.de").read_text(encoding="utf-8").split("\n")
    lines[9] = ""
    (tmp_path / "train.de").write_text("\n".join(lines), encoding="utf-8")
    splits = load_parallel_splits(DataConfig(train=str(tmp_path / "train"), source_lang="en", target_lang="de"))
    assert splits["train"].dropped == {"empty target": [10]}
    assert 10 not in [r for s in splits.values() for r in s.rows]
    assert split_record(splits)["train"]["dropped"] == {"empty target": [10]}


def test_explicit_held_out_files(tmp_path):
    numbered(tmp_path, 30)
    numbered(tmp_path, 5, prefix="dev")
    numbered(tmp_path, 6, prefix="tst")
    splits = load_parallel_splits(DataConfig(
        train=str(tmp_path / "train"), source_lang="en", target_lang="de",
        validation_source_file=str(tmp_path / "dev.en"), validation_target_file=str(tmp_path / "dev.de"),
        test_source_file=str(tmp_path / "tst.en"), test_target_file=str(tmp_path / "tst.de")))
    assert {k: len(v) for k, v in splits.items()} == {"train": 30, "validation": 5, "test": 6}


def test_table_as_train(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps({"source": f"source {i}", "target": f"ziel {i}"}) for i in range(1, 41)),
                    encoding="utf-8")
    splits = load_parallel_splits(DataConfig(train=str(path), test_fraction=0))
    assert len(splits["train"]) == 36 and all(aligned(s) for s in splits.values())


def test_prefix_without_language_codes_lists_the_files(tmp_path):
    numbered(tmp_path, 5)
    with pytest.raises(UserError) as exc:
        load_parallel_splits(DataConfig(train=str(tmp_path / "train")))
    msg = str(exc.value)
    assert str(tmp_path / "train.de") in msg and str(tmp_path / "train.en") in msg and "--source-lang" in msg


def test_wrong_language_code_lists_what_exists(tmp_path):
    numbered(tmp_path, 5)
    with pytest.raises(UserError) as exc:
        load_parallel_splits(DataConfig(train=str(tmp_path / "train"), source_lang="en", target_lang="fr"))
    msg = str(exc.value)
    assert "train.fr" in msg and str(tmp_path / "train.de") in msg and "\n" not in msg


@pytest.mark.parametrize("cfg, words", [
    ({}, ["no training data", "--source-file", "--source-lang"]),
    ({"source_file": "a.en"}, ["data.source_file is set but data.target_file is not"]),
    ({"validation_target_file": "v.de", "source_file": "a.en", "target_file": "a.de"},
     ["data.validation_target_file is set but data.validation_source_file is not"]),
    ({"train": "x", "source_file": "a.en", "target_file": "a.de"}, ["both set"]),
    ({"train": "missing.tsv"}, ["missing.tsv", "file not found"]),
])
def test_config_mistakes_are_one_line_user_errors(tmp_path, monkeypatch, cfg, words):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as exc:
        load_parallel_splits(DataConfig(**cfg))
    assert all(w in str(exc.value) for w in words) and "\n" not in str(exc.value)

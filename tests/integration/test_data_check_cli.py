"""`tuneforge data check` end to end: report files, JSON counts, and exit codes 0 / 1 / 2."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from tfi_helpers import assert_ok, assert_user_error, describe, run_cli, write_csv

PNG = b"\x89PNG\r\n\x1a\n"
GOOD = ["great", "lovely", "superb", "fine", "happy"]
BAD = ["awful", "poor", "broken", "sad", "ugly"]


def _clean_rows(n: int, seed: int) -> list[tuple[str, str]]:
    """Random 8-word sentences over a large made-up vocabulary: no duplicates, near-duplicates or overlap."""
    rng = random.Random(seed)
    vocab = [f"{a}{b}{c}" for a in "bcdfgk" for b in "aeiou" for c in "lmnrst"]
    rows = []
    for i in range(n):
        label = "pos" if i % 2 else "neg"
        words = rng.sample(vocab, 7) + [rng.choice(GOOD if label == "pos" else BAD)]
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("data_check")
    write_csv(base / "train.csv", _clean_rows(80, 1))
    write_csv(base / "val.csv", _clean_rows(20, 2))
    train = _clean_rows(80, 1)
    train[3] = ("<b>bold</b> a|b " + train[3][0], train[3][1])  # markup and a pipe: escaped in both reports
    train[10] = (train[3][0].upper() + " !", train[3][1])   # exact duplicate of row 4 (after normalisation)
    train[11] = (train[5][0], "pos" if train[5][1] == "neg" else "neg")  # row 6's text with the other label
    train[12] = ("   ", "neg")                               # empty row
    write_csv(base / "dirty_train.csv", train)
    val = _clean_rows(20, 2)
    val[0] = (train[20][0] + ".", train[20][1])              # exact leak of train row 21
    val[1] = (train[30][0] + " ok", train[30][1])            # near leak of train row 31
    write_csv(base / "dirty_val.csv", val)
    return base


def _check(base: Path, model: Path, train: str, val: str, out: str, *extra: str):
    return run_cli(["data", "check", "--train", train, "--validation", val, "--model", model, "--output", out, *extra],
                   cwd=base, OMP_NUM_THREADS="1")


def test_clean_data_exits_0_and_writes_the_report(data, tiny_model):
    proc = _check(data, tiny_model, "train.csv", "val.csv", "clean", "--fail-on", "leakage,conflicts,duplicates,empty")
    assert_ok(proc)
    out = data / "clean"
    for name in ("data_report.md", "data_report.html", "data_summary.json"):
        assert (out / name).stat().st_size > 200, name
    for name in ("label_distribution.png", "token_lengths.png"):
        assert (out / name).read_bytes()[:8] == PNG, name
    summary = json.loads((out / "data_summary.json").read_text(encoding="utf-8"))
    assert summary["problems"]["leakage"] == summary["problems"]["duplicates"] == summary["problems"]["empty"] == 0
    assert summary["splits"]["train"]["rows"] == 80 and summary["splits"]["validation"]["rows"] == 20
    assert summary["splits"]["train"]["labels"]["counts"] == {"neg": 40, "pos": 40}
    assert summary["splits"]["train"]["tokens"]["count"] == 80 and summary["splits"]["train"]["tokens"]["max"] > 8
    assert "✓" in (out / "data_report.md").read_text(encoding="utf-8") and "data_report.html" in proc.stdout


def test_dirty_data_counts_and_fail_on_leakage_exits_1(data, tiny_model):
    proc = _check(data, tiny_model, "dirty_train.csv", "dirty_val.csv", "dirty", "--fail-on", "leakage")
    assert proc.returncode == 1, describe(proc)
    assert "Traceback" not in proc.stderr and "leakage" in proc.stderr
    summary = json.loads((data / "dirty" / "data_summary.json").read_text(encoding="utf-8"))
    p = summary["problems"]
    # Row 12 repeats row 6 with the other label: a conflict, and (like any repeated text) a duplicate too.
    assert (p["duplicates"], p["conflicts"], p["empty"], p["leakage"]) == (2, 1, 1, 2), p
    leak = summary["leakage"]["validation"]
    assert (leak["exact"], leak["near"]) == (1, 1)
    assert {e["train_row"] for e in leak["examples"]} == {21, 31}
    assert set(p) == {"duplicates", "near_duplicates", "conflicts", "leakage", "suspects", "empty", "encoding"}
    html = (data / "dirty" / "data_report.html").read_text(encoding="utf-8")
    assert "⚠" in html and "Leakage" in html
    assert "<b>bold" not in html and "&lt;b&gt;bold&lt;/b&gt; a|b" in html
    md = (data / "dirty" / "data_report.md").read_text(encoding="utf-8")
    assert "&lt;b&gt;bold&lt;/b&gt; a\\|b" in md  # a table cell, not a column break


def test_missing_column_exits_2_with_one_line(data, tiny_model):
    proc = _check(data, tiny_model, "train.csv", "val.csv", "bad", "--text-column", "body")
    assert_user_error(proc, "train.csv", "no column 'body'")


def test_unknown_fail_on_kind_exits_2_with_the_valid_list(data, tiny_model):
    proc = _check(data, tiny_model, "train.csv", "val.csv", "bad2", "--fail-on", "leakage,leaks")
    assert_user_error(proc, "--fail-on", "'leaks'", "near_duplicates")
    assert not (data / "bad2").exists()

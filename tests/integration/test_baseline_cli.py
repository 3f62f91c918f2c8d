"""`tuneforge baseline` through the CLI: learns a separable toy set, carves the split a fine-tune would, CJK → char
n-grams, one-line errors."""
from __future__ import annotations

import json
import random
from pathlib import Path

from tfi_helpers import (
    assert_ok,
    assert_user_error,
    describe,
    make_rows,
    run_cli,
    write_csv,
)

from tuneforge.config import DataConfig
from tuneforge.data.splits import load_splits


def _read(out: Path) -> tuple[dict, dict]:
    return json.loads((out / "metrics.json").read_text()), json.loads((out / "split.json").read_text())


def test_baseline_learns_the_toy_task_on_the_finetune_split(tmp_path):
    write_csv(tmp_path / "train.csv", make_rows(300, 1))
    proc = run_cli(["baseline", "--train", "train.csv", "--output", "out"], cwd=tmp_path, timeout=120)
    assert_ok(proc)
    metrics, split = _read(tmp_path / "out")
    assert metrics["primary"] == "test"
    assert set(metrics["metrics"]) == {"validation", "test"}
    for name in ("validation", "test"):
        assert metrics["metrics"][name]["accuracy"] > 0.9, describe(proc)
    assert metrics["analyzer"] == "word 1-2-grams"
    # The same rows `tuneforge finetune` would carve with this data config (default fractions, split_seed 13).
    expected = load_splits(DataConfig(train=str(tmp_path / "train.csv")))
    for name, s in expected.items():
        assert split[name]["rows"] == s.rows, name
        assert metrics["data"]["splits"][name]["rows"] == len(s.rows)
    assert metrics["metrics"]["test"]["train_rows"] == len(expected["train"].rows)
    assert metrics["metrics"]["test"]["eval_rows"] == len(expected["test"].rows)
    assert "baseline.md" in proc.stdout and "test" in proc.stdout and "macro F1" in proc.stdout
    assert "| test |" in (tmp_path / "out" / "baseline.md").read_text()


def test_config_file_and_set_override_choose_the_split(tmp_path):
    write_csv(tmp_path / "train.csv", make_rows(200, 4))
    write_csv(tmp_path / "test.csv", make_rows(60, 5))
    (tmp_path / "cfg.yaml").write_text("data:\n  train: train.csv\n  validation_fraction: 0.2\n", encoding="utf-8")
    proc = run_cli(["baseline", "cfg.yaml", "--test", "test.csv", "--set", "data.split_seed=7", "--output", "o"],
                   cwd=tmp_path, timeout=120)
    assert_ok(proc)
    metrics, split = _read(tmp_path / "o")
    expected = load_splits(DataConfig(train=str(tmp_path / "train.csv"), test=str(tmp_path / "test.csv"),
                                      validation_fraction=0.2, split_seed=7))
    assert split["validation"]["rows"] == expected["validation"].rows
    assert split["train"]["rows"] == expected["train"].rows
    assert metrics["metrics"]["test"]["eval_rows"] == 60
    assert metrics["data"]["split_seed"] == 7


def _zh_rows(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    good, bad = ["好", "棒", "喜欢", "满意", "不错"], ["差", "烂", "糟糕", "失望", "难用"]
    filler = ["这个", "手机", "酒店", "服务", "真的", "非常", "电影", "外卖", "房间", "质量"]
    rows = []
    for i in range(n):
        label, words = ("正面", good) if i % 2 == 0 else ("负面", bad)
        parts = rng.sample(filler, 3) + rng.sample(words, 2)
        rng.shuffle(parts)
        rows.append(("".join(parts), label))  # no spaces, as written Chinese
    return rows


def test_cjk_text_uses_character_ngrams(tmp_path):
    write_csv(tmp_path / "zh.csv", _zh_rows(200, 0))
    proc = run_cli(["baseline", "--train", "zh.csv", "--output", "zh"], cwd=tmp_path, timeout=120)
    assert_ok(proc)
    metrics, _ = _read(tmp_path / "zh")
    assert metrics["analyzer"].startswith("char")
    assert metrics["metrics"]["test"]["analyzer"] == "char 1-3-grams"
    assert metrics["metrics"]["test"]["accuracy"] > 0.9
    assert set(metrics["labels"]) == {"正面", "负面"}


def test_missing_column_and_multi_label_are_one_line_errors(tmp_path):
    write_csv(tmp_path / "train.csv", make_rows(100, 1))
    proc = run_cli(["baseline", "--train", "train.csv", "--text-column", "review", "--output", "o"], cwd=tmp_path)
    assert_user_error(proc, "train.csv", "review")
    assert not (tmp_path / "o" / "metrics.json").exists()

    rows = [(t, "a|b" if i % 3 == 0 else "a" if i % 3 == 1 else "b") for i, (t, _) in enumerate(make_rows(100, 1))]
    write_csv(tmp_path / "multi.csv", rows)
    proc = run_cli(["baseline", "--train", "multi.csv", "--set", "data.label_separator=|", "--output", "m"],
                   cwd=tmp_path)
    assert_user_error(proc, "multi.csv", "single-label only")

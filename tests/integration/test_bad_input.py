"""User mistakes: exit code 2, exactly one 'error:' line on stderr naming the problem, never a traceback.

All commands run once in a module fixture, in this process through the CLI's `main` (tfi_helpers.run_cli); each
test then checks one case.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tfi_helpers import (
    assert_user_error,
    make_rows,
    run_cli,
    run_subprocess,
    trained_run,
    write_csv,
    write_toy_data,
)

TRAIN = ["--validation", "val.csv", "--test", "test.csv"]


def _prepare(base: Path, tiny: str, final: str) -> dict[str, list[str]]:
    write_toy_data(base)
    rows = make_rows(12, 4)
    write_csv(base / "review.csv", rows, header=("review", "label"))
    write_csv(base / "empty.csv", [])
    write_csv(base / "no_text.csv", rows[:4] + [("  ", "positive")] + rows[4:])  # data row 5
    write_csv(base / "no_label.csv", rows[:3] + [(rows[3][0], "")] + rows[4:])  # data row 4
    write_csv(base / "test_unseen.csv", rows[:5] + [("okay average movie", "neutralish")])
    with open(base / "latin1.csv", "wb") as fh:  # line 4 holds a latin-1 byte
        fh.write(b"text,label\ngood movie,positive\nbad movie,negative\ncaf\xe9 was lovely,positive\n")
    (base / "bad.yaml").write_text("train:\n  epoch: 3\n", encoding="utf-8")
    (base / "existing" / "checkpoints" / "step-3").mkdir(parents=True)
    (base / "existing" / "checkpoints" / "step-3" / "marker").write_text("keep me")
    (base / "texts.txt").write_text("good\nbad\n", encoding="utf-8")
    ft = ["finetune", "--model", tiny, "--set", "runtime.progress=false"]
    commands = {
        "missing_train": [*ft, "--train", "missing.csv", "--output", "r"],
        "unknown_text_column": [*ft, "--train", "review.csv", "--text-column", "body", "--output", "r"],
        "empty_data": [*ft, "--train", "empty.csv", "--output", "r"],
        "row_without_text": [*ft, "--train", "no_text.csv", "--output", "r"],
        "row_without_label": [*ft, "--train", "no_label.csv", "--output", "r"],
        "unseen_test_label": [*ft, "--train", "train.csv", "--validation", "val.csv", "--test", "test_unseen.csv",
                              "--output", "r"],
        "non_utf8": [*ft, "--train", "latin1.csv", "--output", "r"],
        "yaml_bad_key": ["finetune", "bad.yaml", "--model", tiny, "--train", "train.csv", "--output", "r"],
        "set_bad_key": [*ft, "--train", "train.csv", "--set", "train.epoch=3", "--output", "r"],
        "set_bad_value": [*ft, "--train", "train.csv", "--set", "train.epochs=abc", "--output", "r"],
        "class_weights_count": [*ft, "--train", "train.csv", *TRAIN, "--set", "train.class_weights=[1.0]",
                                "--output", "r"],
        "missing_model": ["finetune", "--model", "./no-such-model", "--train", "train.csv", *TRAIN, "--output", "r"],
        "hub_id_offline": ["finetune", "--model", "someorg/somemodel", "--train", "train.csv", *TRAIN, "--output", "r"],
        "existing_run": [*ft, "--train", "train.csv", *TRAIN, "--output", "existing"],
        "evaluate_unseen_label": ["evaluate", "--model", final, "--data", "test_unseen.csv", "--output", "ev"],
        "predict_missing_input": ["predict", "--model", final, "--input", "nothere.txt", "--output", "p.jsonl"],
        "embed_bad_pooling": ["embed", "--model", tiny, "--input", "texts.txt", "--output", "e.npy", "--pooling", "max"],
    }
    # A separate run folder per case: a case that wrongly started a run cannot hide the next one's error.
    return {name: [f"out_{name}" if a == "r" else a for a in args] for name, args in commands.items()}


@pytest.fixture(scope="module")
def results(tmp_path_factory, tiny_model):
    final = str(trained_run(tmp_path_factory, tiny_model)["final"])
    base = tmp_path_factory.mktemp("bad_input")
    commands = _prepare(base, str(tiny_model), final)
    return {"base": base, **{name: run_cli(args, base) for name, args in commands.items()}}


def test_missing_train_file(results):
    line = assert_user_error(results["missing_train"], "missing.csv")
    assert re.search(r"not found|does not exist|no such file", line, re.I), line


def test_unknown_text_column_lists_columns(results):
    assert_user_error(results["unknown_text_column"], "body", "review", "label")


def test_header_only_file(results):
    assert_user_error(results["empty_data"], "empty.csv")


def test_row_without_text(results):
    line = assert_user_error(results["row_without_text"], "no_text.csv")
    assert re.search(r"row 5\b|line 6\b|:6\b", line), line


def test_row_without_label(results):
    line = assert_user_error(results["row_without_label"], "no_label.csv", "label")
    assert re.search(r"row 4\b|line 5\b|:5\b", line), line


def test_test_label_never_seen_in_training(results):
    assert_user_error(results["unseen_test_label"], "test_unseen.csv", "neutralish")


def test_non_utf8_names_the_line(results):
    line = assert_user_error(results["non_utf8"], "latin1.csv")
    assert re.search(r":4\b|line 4\b", line), line
    assert "UTF-8" in line or "utf-8" in line


def test_bad_key_in_yaml_suggests_the_closest(results):
    assert_user_error(results["yaml_bad_key"], "bad.yaml", "'train.epoch'", "train.epochs")


def test_bad_key_in_set_suggests_the_closest(results):
    line = assert_user_error(results["set_bad_key"], "train.epochs")
    assert "train.epoch" in line.replace("train.epochs", "")  # names the wrong key, too


def test_bad_value_in_set(results):
    assert_user_error(results["set_bad_value"], "train.epochs", "abc")


def test_class_weights_list_that_does_not_fit_the_labels(results):
    """An explicit weight list of the wrong length is named with the labels' order, not a torch shape error."""
    line = assert_user_error(results["class_weights_count"], "train.class_weights", "1 weights", "2 classes")
    assert "negative, positive" in line, line
    assert not (results["base"] / "out_class_weights_count" / "final").exists()


def test_model_path_that_does_not_exist(results):
    assert_user_error(results["missing_model"], "no-such-model")


def test_hub_id_that_is_not_available_offline(results):
    """An org/name hub id is a valid model name; offline and not cached it must fail as 'cannot load', not as
    'not a hub id'."""
    line = assert_user_error(results["hub_id_offline"], "someorg/somemodel")
    assert "not a hub id" not in line, line


def test_existing_run_folder_needs_resume_or_overwrite(results):
    assert_user_error(results["existing_run"], "existing", "--resume", "--overwrite")
    assert (results["base"] / "existing" / "checkpoints" / "step-3" / "marker").read_text() == "keep me"
    assert not (results["base"] / "existing" / "config.yaml").exists()


def test_evaluate_with_an_unseen_label(results):
    assert_user_error(results["evaluate_unseen_label"], "test_unseen.csv", "neutralish")
    assert not (results["base"] / "ev" / "metrics.json").exists()


def test_predict_with_a_missing_input(results):
    assert_user_error(results["predict_missing_input"], "nothere.txt")
    assert not (results["base"] / "p.jsonl").exists()


def test_embed_with_a_bad_pooling(results):
    assert_user_error(results["embed_bad_pooling"], "max", "mean", "cls", "last4")
    assert not (results["base"] / "e.npy").exists()


# slow: real processes. Every other test here runs the CLI in process (tfi_helpers.run_cli); this checks that runner
# against `python -m tuneforge`: the same exit code, stdout and stderr, for a user error and for a help page.
@pytest.mark.slow
@pytest.mark.parametrize("case", ["missing_train", "help"])
def test_in_process_runs_match_the_real_process(results, case):
    args = ["finetune", "--help"] if case == "help" else results[case].args[1:]
    ours = run_cli(args, results["base"])
    real = run_subprocess(args, results["base"])
    assert (ours.returncode, ours.stdout, ours.stderr) == (real.returncode, real.stdout, real.stderr)


@pytest.mark.parametrize("args, needle", [(["predict"], "Missing option '--model'"),
                                          (["predict", "--model", "m", "--nope"], "No such option: --nope")])
def test_usage_mistakes_exit_2_without_a_traceback(tmp_path, args, needle):
    """typer bundles its own click: its usage errors must still be a usage message and exit 2, not a traceback."""
    proc = run_cli(args, tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert needle in proc.stderr and "Usage: " in proc.stderr

"""The search space of `tuneforge tune`: space YAML and range flags, checked against the fine-tune schema; every
mistake is one line naming the key."""
from __future__ import annotations

import pytest

from tuneforge.errors import UserError
from tuneforge.recipes.tune_space import Param, build_space, check_space, parse_flag, parse_param, read_space

BASE = {"data": {"train": "train.csv"}}


class _Trial:
    """What Param.suggest calls, answering each suggestion with its bounds so the call is visible."""

    def suggest_float(self, name, low, high, step=None, log=False):
        return ("float", name, low, high, step, log)

    def suggest_int(self, name, low, high, step=1, log=False):
        return ("int", name, low, high, step, log)

    def suggest_categorical(self, name, choices):
        return ("choice", name, choices)


def _space(tmp_path, text: str):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


def test_space_yaml_ranges_choices_and_nested_keys(tmp_path):
    path = _space(tmp_path, "train.learning_rate: {low: 1e-5, high: 1e-3, log: true}\n"  # 1e-5: a YAML string
                            "train:\n  batch_size: {choices: [16, 32]}\n  epochs: {low: 2, high: 6}\n"
                            "train.warmup_ratio: {low: 0, high: 0.2}\nlora.rank: [4, 8]\n")
    params = {p.name: p for p in read_space(path)}
    assert params["train.learning_rate"] == Param("train.learning_rate", 1e-5, 1e-3, log=True)
    assert params["train.batch_size"].choices == (16, 32)
    assert params["train.epochs"].integer and (params["train.epochs"].low, params["train.epochs"].high) == (2, 6)
    assert not params["train.warmup_ratio"].integer  # 0:0.2 is a float range
    assert params["lora.rank"].choices == (4, 8)
    trial = _Trial()
    assert params["train.learning_rate"].suggest(trial) == ("float", "train.learning_rate", 1e-5, 1e-3, None, True)
    assert params["train.epochs"].suggest(trial) == ("int", "train.epochs", 2, 6, 1, False)
    assert params["train.batch_size"].suggest(trial) == ("choice", "train.batch_size", [16, 32])


def test_integer_fields_search_integers_even_with_float_bounds():
    p = parse_param("train.batch_size", {"low": 8.0, "high": 64.0, "log": True}, "space.yaml")
    assert p.integer and p.log
    with pytest.raises(UserError, match="whole numbers"):
        parse_param("train.batch_size", {"low": 8.5, "high": 64}, "space.yaml")


def test_flags_ranges_and_choices():
    assert parse_flag("lr", "1e-5:1e-3:log") == Param("train.learning_rate", 1e-5, 1e-3, log=True)
    assert parse_flag("batch_size", "16,32").choices == (16, 32)
    assert parse_flag("epochs", "2:6").integer
    assert parse_flag("warmup", "0:0.2") == Param("train.warmup_ratio", 0.0, 0.2)
    assert parse_flag("lora_rank", "4,8,16").name == "lora.rank"
    with pytest.raises(UserError, match="--set train.learning_rate=0.001"):
        parse_flag("lr", "0.001")
    with pytest.raises(UserError, match="LOW:HIGH:log"):
        parse_flag("lr", "1e-5:1e-3:ln")


def test_a_flag_replaces_the_same_key_from_the_file(tmp_path):
    path = _space(tmp_path, "train.learning_rate: {low: 1e-5, high: 1e-3}\ntrain.weight_decay: {low: 0, high: 0.1}\n")
    params = {p.name: p for p in build_space(path, {"lr": "1e-4:1e-2:log", "epochs": None})}
    assert params["train.learning_rate"].low == 1e-4 and params["train.learning_rate"].log
    assert set(params) == {"train.learning_rate", "train.weight_decay"}


@pytest.mark.parametrize("text, message", [
    ("train.learnig_rate: {low: 1e-5, high: 1e-3}", "unknown parameter 'train.learnig_rate'. Did you mean "
                                                   "'train.learning_rate'?"),
    ("train.learning_rate: {low: 1e-3, high: 1e-5}", "train.learning_rate: empty range (low 0.001 must be below "
                                                    "high 1e-05)"),
    ("train.learning_rate: {low: 1e-3, high: 1e-3}", "empty range"),
    ("train.batch_size: {choices: []}", "train.batch_size: empty choices"),
    ("train.batch_size: {low: 16, high: 17, step: 2}", "empty range (no whole step"),
    ("train.learning_rate: {low: 0, high: 1e-3, log: true}", "a log range needs low > 0"),
    ("train.learning_rate: {low: 1e-5, hihg: 1e-3}", "unknown field 'hihg'. Did you mean 'high'?"),
    ("train.learning_rate: {low: 1e-5}", "needs both low and high"),
    ("train.learning_rate: {low: small, high: 1e-3}", "train.learning_rate.low: expected a number"),
    ("output: {choices: [a, b]}", "'output' cannot be searched"),
    ("- train.learning_rate", "a space is a mapping"),
])
def test_space_mistakes_are_one_line_naming_the_key(tmp_path, text, message):
    with pytest.raises(UserError) as err:
        read_space(_space(tmp_path, text))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_no_space_at_all_names_the_flags():
    with pytest.raises(UserError, match="nothing to search: give --space FILE or a range flag"):
        build_space(None, {"lr": None})


def test_every_end_of_a_range_must_be_a_valid_config():
    check_space([Param("train.warmup_ratio", 0.0, 0.5), Param("train.epochs", 1.0, 3.0, integer=True)], BASE, "s")
    with pytest.raises(UserError, match=r"train.warmup_ratio = 1.0 is not a valid value .*less than 1"):
        check_space([Param("train.warmup_ratio", 0.0, 1.0)], BASE, "space.yaml")
    with pytest.raises(UserError, match="eval.metric = 'f1' is not a valid value"):
        check_space([Param("eval.metric", choices=("accuracy", "f1"))], BASE, "space.yaml")

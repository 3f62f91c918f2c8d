"""Config loading: YAML + CLI base dict + dotted --set overrides, validated into one-line UserErrors."""
from __future__ import annotations

import pytest

from tuneforge.config import FinetuneConfig, apply_overrides, load_config, to_yaml
from tuneforge.config.loader import dotted_keys
from tuneforge.errors import UserError, closest


def _yaml(tmp_path, text: str):
    p = tmp_path / "cfg.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_dotted_keys_lists_nested_keys_and_not_sections():
    keys = dotted_keys(FinetuneConfig)
    for k in ("task", "output", "data.train", "data.label_separator", "model.name", "train.epochs",
              "train.learning_rate", "eval.every_steps", "runtime.keep_checkpoints"):
        assert k in keys
    # sections themselves are not leaf keys
    assert "train" not in keys and "data" not in keys
    assert len(keys) == len(set(keys))


def test_closest_suggests_and_is_empty_when_nothing_close():
    assert closest("train.epoch", dotted_keys(FinetuneConfig)) == " Did you mean 'train.epochs'?"
    assert closest("zzzzzzzzzz", ["train.epochs"]) == ""


def test_yaml_unknown_key_suggests_closest_dotted_key(tmp_path):
    path = _yaml(tmp_path, "train:\n  epoch: 3\n")
    with pytest.raises(UserError) as exc:
        load_config(path, FinetuneConfig)
    msg = str(exc.value)
    assert "train.epoch'" in msg
    assert "Did you mean 'train.epochs'?" in msg
    assert str(path) in msg


def test_yaml_unknown_key_in_other_section(tmp_path):
    with pytest.raises(UserError, match=r"Did you mean 'model\.unk_threshold'"):
        load_config(_yaml(tmp_path, "model:\n  unk_treshold: 0.1\n"), FinetuneConfig)


def test_yaml_valid_file_loads_values(tmp_path):
    cfg = load_config(_yaml(tmp_path, "data:\n  train: a.csv\ntrain:\n  epochs: 2\n  batch_size: 8\n"), FinetuneConfig)
    assert cfg.data.train == "a.csv"
    assert cfg.train.epochs == 2.0 and cfg.train.batch_size == 8
    assert cfg.train.learning_rate is None  # still auto


def test_missing_and_invalid_yaml_files(tmp_path):
    with pytest.raises(UserError, match="config file not found"):
        load_config(tmp_path / "absent.yaml", FinetuneConfig)
    with pytest.raises(UserError, match=r"line \d+: invalid YAML"):
        load_config(_yaml(tmp_path, "train:\n  epochs: [1, 2\n"), FinetuneConfig)
    with pytest.raises(UserError, match="must be a mapping"):
        load_config(_yaml(tmp_path, "- a\n- b\n"), FinetuneConfig)


def test_set_override_types_parsed_as_yaml():
    raw = apply_overrides({}, ["train.batch_size=32", "train.warmup_ratio=0.25", "train.max_grad_norm=null",
                               "train.class_weights=[1, 2.5]", "data.normalize=false", "model.name=org/name",
                               "runtime.threads="], FinetuneConfig)
    assert raw["train"]["batch_size"] == 32 and isinstance(raw["train"]["batch_size"], int)
    assert raw["train"]["warmup_ratio"] == 0.25 and isinstance(raw["train"]["warmup_ratio"], float)
    assert raw["train"]["max_grad_norm"] is None and "max_grad_norm" in raw["train"]
    assert raw["train"]["class_weights"] == [1, 2.5]
    assert raw["data"]["normalize"] is False
    assert raw["model"]["name"] == "org/name"
    assert raw["runtime"]["threads"] is None


def test_set_overrides_validate_into_typed_config():
    cfg = load_config(None, FinetuneConfig, overrides=[
        "train.epochs=3", "train.learning_rate=2e-5", "train.max_grad_norm=null", "train.class_weights=[1, 2.5]"])
    assert cfg.train.epochs == 3.0
    assert cfg.train.learning_rate == pytest.approx(2e-5)
    assert cfg.train.max_grad_norm is None
    assert cfg.train.class_weights == [1.0, 2.5]


def test_set_override_label_separator_pipe():
    # The schema's own example separator ('|') must survive `--set` parsing.
    cfg = load_config(None, FinetuneConfig, overrides=["data.label_separator=|"])
    assert cfg.data.label_separator == "|"


def test_set_override_beats_yaml_and_keeps_siblings(tmp_path):
    path = _yaml(tmp_path, "train:\n  epochs: 2\n  batch_size: 8\n")
    cfg = load_config(path, FinetuneConfig, overrides=["train.epochs=5"])
    assert cfg.train.epochs == 5.0 and cfg.train.batch_size == 8


def test_apply_overrides_rejects_unknown_key_with_suggestion():
    with pytest.raises(UserError) as exc:
        apply_overrides({}, ["train.learnig_rate=1e-4"], FinetuneConfig)
    assert "train.learnig_rate" in str(exc.value)
    assert "Did you mean 'train.learning_rate'?" in str(exc.value)


def test_apply_overrides_rejects_missing_equals():
    with pytest.raises(UserError, match="expected KEY=VALUE"):
        apply_overrides({}, ["train.epochs"], FinetuneConfig)
    with pytest.raises(UserError, match="expected KEY=VALUE"):
        apply_overrides({}, ["=3"], FinetuneConfig)


@pytest.mark.parametrize("override,field", [
    ("train.epochs=abc", "train.epochs"),
    ("train.batch_size=-4", "train.batch_size"),
    ("data.validation_fraction=0.9", "data.validation_fraction"),
    ("model.extend_vocab=sometimes", "model.extend_vocab"),
])
def test_bad_value_names_the_field(override, field):
    with pytest.raises(UserError) as exc:
        load_config(None, FinetuneConfig, overrides=[override])
    msg = str(exc.value)
    assert field in msg
    assert "\n" not in msg  # one line


def test_bad_value_in_yaml_names_file_and_field(tmp_path):
    path = _yaml(tmp_path, "eval:\n  batch_size: many\n")
    with pytest.raises(UserError) as exc:
        load_config(path, FinetuneConfig)
    assert str(path) in str(exc.value) and "eval.batch_size" in str(exc.value) and "'many'" in str(exc.value)


def test_load_config_merges_base_dict_ignoring_none(tmp_path):
    path = _yaml(tmp_path, "data:\n  train: from_yaml.csv\n  text_column: sentence\ntrain:\n  epochs: 2\n")
    base = {"data": {"train": "from_cli.csv", "text_column": None, "validation": None},
            "train": {"epochs": None, "seed": 7}, "output": "runs/x", "task": None}
    cfg = load_config(path, FinetuneConfig, base=base)
    assert cfg.data.train == "from_cli.csv"  # CLI flag wins
    assert cfg.data.text_column == "sentence"  # None in base does not erase YAML
    assert cfg.data.validation is None
    assert cfg.train.epochs == 2.0
    assert cfg.train.seed == 7
    assert cfg.output == "runs/x"
    assert cfg.task == "classification"


def test_overrides_win_over_base():
    cfg = load_config(None, FinetuneConfig, overrides=["train.seed=3"], base={"train": {"seed": 7}})
    assert cfg.train.seed == 3


def test_to_yaml_round_trips(tmp_path):
    cfg = load_config(None, FinetuneConfig, overrides=["train.epochs=4", "data.train=x.csv"])
    text = to_yaml(cfg)
    again = load_config(_yaml(tmp_path, text), FinetuneConfig)
    assert again == cfg


def test_assignment_is_validated():
    cfg = FinetuneConfig()
    with pytest.raises(Exception):
        cfg.train.batch_size = 0

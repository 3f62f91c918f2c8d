"""`tracking.report_to` in the config and as `--report-to` on finetune and pretrain: a comma list, `none`, an unknown
tracker as a one-line error. What the trackers receive: tests/unit/train/test_tracking.py."""
from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest

from tuneforge.config import FinetuneConfig, PretrainConfig, load_config
from tuneforge.errors import UserError


@pytest.mark.parametrize("value,expected", [
    ("tensorboard,mlflow", ["tensorboard", "mlflow"]), (" MLflow ", ["mlflow"]), ("none", []), ("None", []),
    ("", []), (["tensorboard"], ["tensorboard"]), ("mlflow,mlflow", ["mlflow"]), (["none"], []), (None, [])])
def test_report_to_takes_a_comma_list_or_none(value, expected):
    assert FinetuneConfig.model_validate({"tracking": {"report_to": value}}).tracking.report_to == expected


def test_defaults_report_nowhere_and_both_configs_have_the_group():
    assert FinetuneConfig().tracking.report_to == [] and PretrainConfig().tracking.project == "tuneforge"
    assert FinetuneConfig().tracking.log_model is True and FinetuneConfig().tracking.run_name is None


def test_set_override_and_yaml_list(tmp_path):
    assert load_config(None, PretrainConfig, ["tracking.report_to=tensorboard,mlflow"]).tracking.report_to == \
        ["tensorboard", "mlflow"]
    (tmp_path / "c.yaml").write_text("tracking:\n  report_to: [mlflow]\n  project: sst2\n", encoding="utf-8")
    cfg = load_config(tmp_path / "c.yaml", FinetuneConfig)
    assert cfg.tracking.report_to == ["mlflow"] and cfg.tracking.project == "sst2"


def test_an_unknown_tracker_is_a_one_line_error():
    with pytest.raises(UserError) as err:
        load_config(None, FinetuneConfig, ["tracking.report_to=tensorboard,wandb"])
    assert "tracking.report_to" in str(err.value) and "wandb" in str(err.value) and "\n" not in str(err.value)


def _cli(monkeypatch, capsys, recipe: str, *args) -> tuple[int, object, str]:
    """cli.main with the recipe replaced by one that keeps the config it was given."""
    import importlib

    from tuneforge import cli

    seen = {}
    module = importlib.import_module(f"tuneforge.recipes.{recipe}")

    def fake(cfg, resume=False, overwrite=False):
        seen["cfg"] = cfg
        return SimpleNamespace(report=None, task="classification")

    monkeypatch.setattr(module, recipe, fake)
    monkeypatch.setattr(sys, "argv", ["tuneforge", *map(str, args)])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
        sys.exit(0)
    return exit_.value.code, seen.get("cfg"), capsys.readouterr().err


def test_report_to_flag_reaches_finetune_and_pretrain(tmp_path, monkeypatch, capsys):
    code, cfg, err = _cli(monkeypatch, capsys, "finetune", "finetune", "--train", "x.csv", "--report-to",
                          "tensorboard,mlflow")
    assert code == 0, err
    assert cfg.tracking.report_to == ["tensorboard", "mlflow"]
    code, cfg, err = _cli(monkeypatch, capsys, "pretrain", "pretrain", "--corpus", "a.txt", "--preset", "tiny",
                          "--report-to", "mlflow")
    assert code == 0, err
    assert cfg.tracking.report_to == ["mlflow"]


def test_report_to_none_beats_the_yaml_and_a_bad_name_exits_2(tmp_path, monkeypatch, capsys):
    (tmp_path / "c.yaml").write_text("tracking:\n  report_to: [tensorboard, mlflow]\n", encoding="utf-8")
    code, cfg, err = _cli(monkeypatch, capsys, "finetune", "finetune", tmp_path / "c.yaml", "--report-to", "none")
    assert code == 0, err
    assert cfg.tracking.report_to == []
    code, cfg, err = _cli(monkeypatch, capsys, "finetune", "finetune", "--report-to", "tensorboard,wandb")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and cfg is None and len(lines) == 1, err
    assert lines[0].startswith("error:") and "tracking.report_to" in lines[0] and "wandb" in lines[0]

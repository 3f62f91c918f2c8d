"""Every shipped config loads into its schema and says how to launch it (torchtune's habit)."""
from __future__ import annotations

import importlib.resources

import pytest

from tuneforge.config import FinetuneConfig, PipelineConfig, PretrainConfig, load_config

PRESETS = importlib.resources.files("tuneforge") / "resources" / "presets"
SCHEMAS = {"quickstart": FinetuneConfig, "pretrain": PretrainConfig, "pipeline": PipelineConfig}
FILES = sorted(p.name for p in PRESETS.iterdir() if p.name.endswith(".yaml"))


def test_the_presets_are_found():
    assert {"quickstart.yaml", "pretrain_mini.yaml", "pipeline_sst2.yaml"} <= set(FILES)


@pytest.mark.parametrize("name", FILES)
def test_preset_loads_and_has_a_launch_line(name):
    schema = SCHEMAS[name.split("_")[0].removesuffix(".yaml")]
    text = (PRESETS / name).read_text(encoding="utf-8")
    assert any(line.startswith("# Launch") for line in text.splitlines()[:4]), name
    cfg = load_config(str(PRESETS / name), schema)
    assert isinstance(cfg, schema)
    if schema is PretrainConfig:
        assert cfg.model.preset == "mini" and cfg.data.corpus

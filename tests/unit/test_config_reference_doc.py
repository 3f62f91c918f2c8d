"""docs/config.md is generated from the schema; this fails when someone changes one without the other."""
from pathlib import Path

from tuneforge.config.reference import render_markdown
from tuneforge.config.loader import dotted_keys
from tuneforge.config.schema import FinetuneConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "config.md"


def test_config_doc_is_in_sync_with_schema():
    assert DOC.read_text(encoding="utf-8") == render_markdown(), (
        "docs/config.md is stale: run `python -m tuneforge.config.reference > docs/config.md`")


def test_every_key_is_documented_with_help():
    text = render_markdown()
    for key in dotted_keys(FinetuneConfig):
        assert f"`{key}`" in text
    for section in ("data", "model", "train", "eval", "runtime"):
        sub = FinetuneConfig.model_fields[section].annotation
        assert all(f.description for f in sub.model_fields.values()), section

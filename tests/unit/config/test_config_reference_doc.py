"""docs/config.md is generated from the schema; this fails when someone changes one without the other."""
from pathlib import Path

from tuneforge.config.reference import render_markdown
from tuneforge.config.loader import dotted_keys
from tuneforge.config.schema import FinetuneConfig, PretrainConfig

DOC = Path(__file__).resolve().parents[3] / "docs" / "config.md"


def test_config_doc_is_in_sync_with_schema():
    assert DOC.read_text(encoding="utf-8") == render_markdown(), (
        "docs/config.md is stale: run `python -m tuneforge.config.reference > docs/config.md`")


def test_every_key_is_documented_with_help():
    text = render_markdown()
    for schema in (FinetuneConfig, PretrainConfig):
        for key in dotted_keys(schema):
            assert f"`{key}`" in text, key
        for name, field in schema.model_fields.items():
            sub = field.annotation
            fields = sub.model_fields.values() if isinstance(sub, type) and hasattr(sub, "model_fields") else [field]
            assert all(f.description for f in fields), name

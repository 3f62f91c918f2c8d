"""Render the config reference (docs/config.md) from the schema, so docs and validation never drift.

Regenerate with:  python -m tuneforge.config.reference > docs/config.md
"""
from __future__ import annotations

from pydantic import BaseModel

from tuneforge.config.schema import FinetuneConfig

GROUPS = {"data": "What: the data", "model": "What: the model", "train": "How: optimisation",
          "eval": "How: evaluation", "runtime": "Where: runtime (never changes results)"}


def _esc(text: str | None) -> str:
    return (text or "").replace("|", "\\|")


def _default(field) -> str:
    if field.default_factory is not None:
        return "—"
    value = field.default
    if value is None:
        return "auto" if "auto" in (field.description or "").lower() else "none"
    return f"`{value!r}`".replace("'", "")


def render_markdown(schema: type[BaseModel] = FinetuneConfig) -> str:
    lines = ["# Config reference", "",
             "Generated from `tuneforge.config.schema` by `python -m tuneforge.config.reference`. "
             "Unknown keys are errors (with a suggestion). `auto` values are chosen from the model and data "
             "size and written into the run's `config.yaml`. Override any key with `--set section.key=value`.", ""]
    top = [(n, f) for n, f in schema.model_fields.items() if not (isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel))]
    lines += ["## Top level", "", "| key | default | meaning |", "|---|---|---|"]
    lines += [f"| `{n}` | {_default(f)} | {_esc(f.description)} |" for n, f in top]
    for name, title in GROUPS.items():
        sub = schema.model_fields[name].annotation
        lines += ["", f"## `{name}` — {title}", "", "| key | default | meaning |", "|---|---|---|"]
        lines += [f"| `{name}.{n}` | {_default(f)} | {_esc(f.description)} |" for n, f in sub.model_fields.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_markdown(), end="")

"""Render the config reference (docs/config.md) from the schema, so docs and validation never drift.

Regenerate with:  python -m tuneforge.config.reference > docs/config.md
"""
from __future__ import annotations

from pydantic import BaseModel

from tuneforge.config.schema import FinetuneConfig, PipelineConfig, PretrainConfig

GROUPS = {"data": "What: the data", "model": "What: the model", "tokenizer": "What: the tokenizer",
          "mlm": "What: the masking (objective mlm)", "clm": "What: the causal-LM objective (objective clm)",
          "lora": "What: LoRA adapters (sft)", "train": "How: optimisation",
          "eval": "How: evaluation", "runtime": "Where: runtime (never changes results)",
          "tracking": "Where: experiment tracking (never changes results; docs/tracking.md)"}


def _esc(text: str | None) -> str:
    return (text or "").replace("|", "\\|")


def _default(field) -> str:
    if field.default_factory is not None:
        return "—"
    value = field.default
    if value is None:
        return "auto" if "auto" in (field.description or "").lower() else "none"
    return f"`{value!r}`".replace("'", "")


def _section(schema: type[BaseModel], prefix: str, level: str) -> list[str]:
    lines = []
    top = [(n, f) for n, f in schema.model_fields.items() if not _is_group(f)]
    if top:
        lines += ["", f"{level} Top level", "", "| key | default | meaning |", "|---|---|---|"]
        lines += [f"| `{prefix}{n}` | {_default(f)} | {_esc(f.description)} |" for n, f in top]
    for name, field in schema.model_fields.items():
        if not _is_group(field):
            continue
        title = GROUPS.get(name, "")
        lines += ["", f"{level} `{prefix}{name}`" + (f" — {title}" if title else ""), "",
                  "| key | default | meaning |", "|---|---|---|"]
        lines += [f"| `{prefix}{name}.{n}` | {_default(f)} | {_esc(f.description)} |"
                  for n, f in field.annotation.model_fields.items()]
    return lines


def _is_group(field) -> bool:
    return isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)


def render_markdown() -> str:
    lines = ["# Config reference", "",
             "Generated from `tuneforge.config.schema` by `python -m tuneforge.config.reference`. "
             "Unknown keys are errors (with a suggestion). `auto` values are chosen from the model and data "
             "size and written into the run's `config.yaml`. Override any key with `--set section.key=value`.", "",
             "- [Fine-tuning](#fine-tuning-tuneforge-finetune) — `tuneforge finetune`",
             "- [Pretraining](#pretraining-tuneforge-pretrain) — `tuneforge pretrain`",
             "- [Pipeline](#pipeline-tuneforge-pipeline) — `tuneforge pipeline`: `pretrain:` and `finetune:` "
             "hold the two configs above, with keys prefixed by the section (`--set pretrain.train.max_steps=100`)."]
    lines += ["", "## Fine-tuning (`tuneforge finetune`)"] + _section(FinetuneConfig, "", "###")
    lines += ["", "## Pretraining (`tuneforge pretrain`)"] + _section(PretrainConfig, "", "###")
    pipeline_top = [(n, f) for n, f in PipelineConfig.model_fields.items() if not _is_group(f)]
    lines += ["", "## Pipeline (`tuneforge pipeline`)", "", "| key | default | meaning |", "|---|---|---|"]
    lines += [f"| `{n}` | {_default(f)} | {_esc(f.description)} |" for n, f in pipeline_top]
    lines += ["| `pretrain.*` | — | A pretraining config (its `output` is set to `<output>/pretrain`). |",
              "| `finetune.*` | — | A fine-tuning config (its `output` is `<output>/finetune` and `model.name` "
              "is the pretrained `final/`). |"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_markdown(), end="")

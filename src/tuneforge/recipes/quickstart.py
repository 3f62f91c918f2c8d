"""The quickstart: the packaged demo reviews → fine-tune the automatically chosen model → report → two example
predictions (one English, one Chinese)."""
from __future__ import annotations

import importlib.resources

from tuneforge.config import FinetuneConfig, load_config
from tuneforge.recipes.finetune import finetune
from tuneforge.serve.load import load

EXAMPLES = ["The battery lasts two full days and charging is quick.", "快递太慢了，包装也破了。"]


def quickstart(output: str, overrides: list[str]):
    demo = importlib.resources.files("tuneforge.resources.demo") / "reviews.csv"
    preset = importlib.resources.files("tuneforge.resources.presets") / "quickstart.yaml"
    cfg = load_config(str(preset), FinetuneConfig, overrides, base={"output": output, "data": {"train": str(demo)}})
    summary = finetune(cfg, overwrite=True)
    predictor = load(summary.final)
    return summary, list(zip(EXAMPLES, predictor.predict(EXAMPLES)))

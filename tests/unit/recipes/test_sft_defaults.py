"""SFT's auto settings: only what the user left unset changes, and each change says why."""
from __future__ import annotations

from tuneforge.config import FinetuneConfig, load_config
from tuneforge.recipes.sft import sft_defaults


def test_sft_fills_its_own_defaults_and_says_so():
    cfg, why = sft_defaults(load_config(None, FinetuneConfig, ["lora.enabled=true"], {"task": "sft"}))
    assert cfg.model.name == "smollm2-135m" and why["model.name"] == "smollm2-135m (sft)"
    assert cfg.data.max_length == 512 and cfg.train.batch_size == 8 and cfg.eval.batch_size == 16
    assert cfg.train.learning_rate == 2e-4 and cfg.eval.metric == "loss" and cfg.train.epochs == 2
    assert set(why) == {"model.name", "data.max_length", "eval.batch_size", "train.batch_size", "train.epochs",
                        "train.learning_rate", "eval.metric"}


def test_what_the_user_set_stays():
    overrides = ["data.max_length=128", "train.batch_size=4", "eval.batch_size=128", "eval.metric=loss"]
    cfg, why = sft_defaults(load_config(None, FinetuneConfig, overrides, {"task": "sft", "model": {"name": "minilm-l6"}}))
    assert (cfg.model.name, cfg.data.max_length, cfg.train.batch_size, cfg.eval.batch_size) == ("minilm-l6", 128, 4, 128)
    assert cfg.train.learning_rate is None  # full fine-tuning: resolve_auto picks it by model size, as for classification
    assert set(why) == {"train.epochs"}
    resumed, again = sft_defaults(cfg.model_copy(deep=True))  # a resolved config (config.yaml) changes no further
    assert resumed == cfg and again == {}

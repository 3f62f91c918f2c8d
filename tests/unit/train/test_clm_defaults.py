"""Causal-LM pretraining defaults: the objective's own tokenizer/case/dropout where the config leaves them unset,
what the user set kept, and the learning rate by model size."""
from __future__ import annotations

import pytest

from tuneforge.config.schema import PretrainConfig
from tuneforge.train.defaults import resolve_objective_defaults, resolve_pretrain_auto


def cfg(**raw) -> PretrainConfig:
    return PretrainConfig.model_validate(raw)


def test_clm_from_scratch_gets_a_gpt_tokenizer_with_case_and_no_dropout():
    out, why = resolve_objective_defaults(cfg(objective="clm", model={"preset": "mini"}))
    assert (out.tokenizer.type, out.tokenizer.lowercase, out.model.dropout) == ("gpt", False, 0.0)
    assert set(why) == {"tokenizer.type", "tokenizer.lowercase", "model.dropout"}
    assert resolve_objective_defaults(out) == (out, {})  # resolved once: a resumed config.yaml changes nothing


def test_what_the_user_set_is_kept_and_mlm_is_untouched():
    given = cfg(objective="clm", model={"preset": "mini", "dropout": 0.1},
                tokenizer={"type": "bpe", "lowercase": True})
    out, why = resolve_objective_defaults(given)
    assert (out.tokenizer.type, out.tokenizer.lowercase, out.model.dropout) == ("bpe", True, 0.1) and why == {}
    mlm = cfg(model={"preset": "mini"})
    assert resolve_objective_defaults(mlm) == (mlm, {})
    assert (mlm.tokenizer.type, mlm.tokenizer.lowercase, mlm.model.dropout) == ("wordpiece", True, 0.1)


@pytest.mark.parametrize(("objective", "hidden", "scratch", "lr"), [
    ("clm", 256, True, 1e-3), ("clm", 768, True, 6e-4), ("clm", 1024, True, 3e-4), ("clm", 576, False, 1e-4),
    ("mlm", 256, True, 5e-4), ("mlm", 768, True, 1e-4), ("mlm", 384, False, 1e-4)])
def test_pretraining_learning_rate_by_objective_and_size(objective, hidden, scratch, lr):
    out, why = resolve_pretrain_auto(cfg(objective=objective, train={"max_steps": 10}), 100, hidden, scratch)
    assert out.train.learning_rate == lr and objective in why["train.learning_rate"]

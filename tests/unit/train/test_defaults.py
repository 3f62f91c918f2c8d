"""Auto hyperparameters: chosen from data and model size, never overriding the user."""
from __future__ import annotations

import pytest

from tuneforge.config import FinetuneConfig, load_config
from tuneforge.train.defaults import auto_learning_rate, resolve_auto, total_steps


def _resolve(n, hidden=384, extended=False, world=1, overrides=()):
    cfg = load_config(None, FinetuneConfig, overrides=list(overrides))
    return resolve_auto(cfg, n, hidden, extended, world)


def test_small_data_gets_more_epochs_and_smaller_batch():
    small, why_s = _resolve(500)
    large, _ = _resolve(8000)
    assert small.train.epochs > large.train.epochs
    assert small.train.batch_size == 16 and large.train.batch_size == 32
    assert small.train.epochs <= 20 and large.train.epochs >= 1
    assert "500" in why_s["train.batch_size"]
    assert "train.epochs" in why_s


def test_learning_rate_by_hidden_size_and_vocab_extension():
    assert _resolve(1000, hidden=384)[0].train.learning_rate == pytest.approx(1e-4)
    assert _resolve(1000, hidden=768)[0].train.learning_rate == pytest.approx(5e-5)
    assert _resolve(1000, hidden=1024)[0].train.learning_rate == pytest.approx(2e-5)
    cfg, why = _resolve(1000, hidden=384, extended=True)
    assert cfg.train.learning_rate == pytest.approx(2e-4)
    assert "doubled" in why["train.learning_rate"]
    assert auto_learning_rate(768) == 5e-5


def test_vocab_extension_trains_longer():
    plain, _ = _resolve(4000)
    ext, _ = _resolve(4000, extended=True)
    assert ext.train.epochs > plain.train.epochs


def test_explicit_values_are_never_overwritten():
    overrides = ["train.epochs=1.5", "train.batch_size=8", "train.learning_rate=0.003",
                 "train.early_stopping_patience=0", "eval.every_steps=7", "eval.metric=macro_f1"]
    cfg, why = _resolve(500, hidden=768, extended=True, overrides=overrides)
    assert cfg.train.epochs == 1.5
    assert cfg.train.batch_size == 8
    assert cfg.train.learning_rate == 0.003
    assert cfg.train.early_stopping_patience == 0
    assert cfg.eval.every_steps == 7
    assert cfg.eval.metric == "macro_f1"
    assert why == {}


def test_input_config_is_not_mutated():
    cfg = load_config(None, FinetuneConfig)
    resolved, _ = resolve_auto(cfg, 1000, 384, False)
    assert cfg.train.epochs is None and cfg.train.batch_size is None
    assert resolved.train.epochs is not None


def test_every_auto_value_filled():
    cfg, why = _resolve(1000)
    for v in (cfg.train.epochs, cfg.train.batch_size, cfg.train.learning_rate,
              cfg.train.early_stopping_patience, cfg.eval.every_steps):
        assert v is not None
    assert cfg.eval.metric == "accuracy"
    assert set(why) >= {"train.epochs", "train.batch_size", "train.learning_rate", "eval.every_steps", "eval.metric"}


def test_multi_label_metric():
    cfg, _ = _resolve(1000, overrides=["data.multi_label=true"])
    assert cfg.eval.metric == "micro_f1"


@pytest.mark.parametrize("batch,world,accum,expected", [(30, 4, 1, 32), (16, 3, 1, 18), (16, 2, 3, 18),
                                                         (32, 4, 2, 32), (None, 3, 1, 18)])
def test_batch_rounded_to_multiple_of_world_times_accum(batch, world, accum, expected):
    overrides = [f"train.grad_accum_steps={accum}"] + ([f"train.batch_size={batch}"] if batch else [])
    cfg, why = _resolve(500, world=world, overrides=overrides)
    assert cfg.train.batch_size == expected
    assert cfg.train.batch_size % (world * accum) == 0
    if batch and batch != expected:
        assert "rounded" in why["train.batch_size"]


def test_eval_every_steps_several_per_epoch_on_large_data():
    n = 200_000
    cfg, why = _resolve(n)
    steps_per_epoch = n // cfg.train.batch_size
    evals_per_epoch = steps_per_epoch / cfg.eval.every_steps
    assert evals_per_epoch >= 4
    assert cfg.eval.every_steps <= 500
    small, _ = _resolve(500)
    assert small.eval.every_steps == 500 // small.train.batch_size  # once per epoch on small data


def test_total_steps_and_max_steps():
    cfg, _ = _resolve(1000, overrides=["train.epochs=3", "train.batch_size=10"])
    assert total_steps(cfg, 1000) == 300
    capped, _ = _resolve(1000, overrides=["train.epochs=3", "train.batch_size=10", "train.max_steps=50"])
    assert total_steps(capped, 1000) == 50
    loose, _ = _resolve(1000, overrides=["train.epochs=3", "train.batch_size=10", "train.max_steps=5000"])
    assert total_steps(loose, 1000) == 300
    frac, _ = _resolve(1000, overrides=["train.epochs=0.5", "train.batch_size=10"])
    assert total_steps(frac, 1000) == 50
    tiny, _ = _resolve(5, overrides=["train.epochs=2", "train.batch_size=16"])
    assert total_steps(tiny, 5) == 2  # at least one step per epoch


def test_reuse_memory_lever_switches_the_allocator_tuning(monkeypatch):
    """The reuse_memory lever (on by default) applies the glibc tuning on CPU; off leaves the allocator alone."""
    import platform

    from tuneforge.config import RuntimeConfig
    from tuneforge.train import runtime

    assert runtime.reuse_freed_memory() == (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")
    calls = []
    monkeypatch.setattr(runtime, "reuse_freed_memory", lambda: calls.append(1))
    runtime.make_accelerator(RuntimeConfig(device="cpu", levers="all,-reuse_memory"))
    runtime.make_accelerator(RuntimeConfig(device="cpu", levers="none"))
    assert calls == []
    runtime.make_accelerator(RuntimeConfig(device="cpu"))
    assert calls == [1]


def test_auto_precision_is_bf16_only_on_cpus_with_native_bf16(monkeypatch, tmp_path):
    import types

    import accelerate
    import torch

    from tuneforge.config import FinetuneConfig, RuntimeConfig
    from tuneforge.train import runtime

    info = tmp_path / "cpuinfo"
    for text, expected in (("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16\n", True),
                           ("processor\t: 0\nflags\t\t: fpu amx_tile amx_bf16\n", True),
                           ("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f\nvmx flags\t: avx512_bf16\n", False),
                           ("processor\t: 0\nFeatures\t: fp asimd bf16\n", False)):  # ARM: not measured, fp32
        info.write_text(text)
        assert runtime.cpu_has_native_bf16(str(info)) is expected, text
    assert runtime.cpu_has_native_bf16(str(tmp_path / "missing")) is False  # macOS, Windows
    for value in ("fp32", "bf16", "fp16"):
        assert runtime.resolve_precision(value, cpu=True) == value  # an explicit choice is never overwritten

    made = []
    monkeypatch.setattr(accelerate, "Accelerator", lambda **kw: made.append(kw) or types.SimpleNamespace(
        mixed_precision=kw["mixed_precision"], device=torch.device("cpu")))
    for native, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda native=native: native)
        assert runtime.resolve_precision("auto", cpu=True) == expected
        accelerator = runtime.make_accelerator(RuntimeConfig(device="cpu", levers="none"))
        assert made[-1] == {"cpu": True, "mixed_precision": "no" if expected == "fp32" else expected}
        cfg = FinetuneConfig()
        pinned, why = runtime.pin_precision(cfg, accelerator)
        assert pinned.runtime.precision == expected and cfg.runtime.precision == "auto"  # config.yaml records it
        assert why["runtime.precision"] == ("bf16 (native bf16 on this CPU: avx512_bf16/AMX; --set "
                                            "runtime.precision=fp32 to change)" if native else
                                            "fp32 (no native bf16 on this CPU; --set runtime.precision=bf16 to change)")
        cfg.runtime.precision = "fp32"
        assert runtime.pin_precision(cfg, accelerator) == (cfg, {})


def _contrastive(n, value="auto", unfit=None, world=1, overrides=()):
    from tuneforge.train.defaults import resolve_contrastive

    cfg = load_config(None, FinetuneConfig, overrides=[f"train.contrastive={value}", *overrides])
    return resolve_contrastive(cfg, n, unfit, world)


def test_contrastive_auto_is_on_for_few_rows_only():
    on, why = _contrastive(500)
    assert on.train.contrastive == "on" and "500" in why["train.contrastive"]
    assert on.train.contrastive_pairs == 10_000 and on.train.batch_size == 16
    assert on.train.learning_rate == pytest.approx(2e-5) and on.train.epochs == 1
    assert on.train.early_stopping_patience == 0 and on.eval.every_steps == 157  # 625 steps / 4
    assert _contrastive(501)[0].train.contrastive == "off"
    assert _contrastive(500, overrides=["data.multi_label=true"])[0].train.contrastive == "off"
    assert _contrastive(500, world=2)[0].train.contrastive == "off"
    assert _contrastive(500, unfit="no pooler")[0].train.contrastive == "off"


def test_contrastive_off_by_default_and_never_overrides_the_user():
    cfg = load_config(None, FinetuneConfig)
    assert cfg.train.contrastive == "off"
    off, why = _contrastive(500, value="off")
    assert off.train.batch_size is None and why == {}
    mine, _ = _contrastive(500, value="on", overrides=["train.learning_rate=1e-4", "train.contrastive_pairs=300"])
    assert mine.train.learning_rate == pytest.approx(1e-4) and mine.train.contrastive_pairs == 300


def test_contrastive_on_where_it_cannot_run_is_a_user_error():
    from tuneforge.errors import UserError

    with pytest.raises(UserError, match="train.contrastive"):
        _contrastive(500, value="on", unfit="RobertaForSequenceClassification has no single linear `classifier` layer")


def test_contrastive_with_early_stopping_is_a_user_error():
    from tuneforge.errors import UserError

    with pytest.raises(UserError, match="early_stopping_patience"):
        _contrastive(500, value="on", overrides=["train.early_stopping_patience=3"])
    assert _contrastive(500, value="on", overrides=["train.early_stopping_patience=0"])[0].train.contrastive == "on"

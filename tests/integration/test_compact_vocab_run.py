"""A fine-tune with the compact vocabulary (the compact_vocab lever, forced on for the tiny model) ends with the same
model as one that trains the whole table, except rows no text uses (as loaded instead of weight-decayed), and an
interrupted run resumes to the same final weights."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

import tuneforge.model.compact_vocab as compact_vocab
from tfi_helpers import (
    assert_same_weights,
    fp_tolerance,
    interrupt_after_checkpoints,
    load_weights,
    read_jsonl,
    write_toy_data,
)

OVERRIDES = ["train.epochs=2", "train.batch_size=16", "train.learning_rate=0.003", "train.weight_decay=0.1",
             "train.early_stopping_patience=0", "eval.every_steps=5", "eval.metric=loss", "eval.baseline=false",
             "runtime.progress=false", "runtime.threads=1", "runtime.device=cpu", "runtime.precision=fp32"]
EMBEDDING = "bert.embeddings.word_embeddings.weight"


def _run(data, tiny_model, output, levers="all", resume=False):
    from tuneforge.config import FinetuneConfig, load_config
    from tuneforge.recipes.finetune import finetune

    base = {"output": str(output), "model": {"name": str(tiny_model)},
            "data": {"train": str(data["train"]), "validation": str(data["validation"]), "test": str(data["test"])}}
    return finetune(load_config(None, FinetuneConfig, [*OVERRIDES, f"runtime.levers={levers}"], base), resume=resume)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model):
    base = tmp_path_factory.mktemp("compact")
    data = write_toy_data(base / "data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(compact_vocab, "MIN_BYTES", 0)
        compact = _run(data, tiny_model, base / "compact")
    dense = _run(data, tiny_model, base / "dense", levers="all,-compact_vocab")
    return {"data": data, "base": base, "compact": compact, "dense": dense}


def test_compact_run_matches_the_whole_table_run(runs, tiny_model):
    run = runs["base"] / "compact"
    a, b = load_weights(run / "final"), load_weights(runs["base"] / "dense" / "final")
    loaded = load_file(str(tiny_model / "model.safetensors"))["embeddings.word_embeddings.weight"]
    assert a.keys() == b.keys() and a[EMBEDDING].shape == loaded.shape  # final/ has the whole vocabulary
    for key in a:
        if key != EMBEDDING:
            tol = fp_tolerance(a[key].dtype, 1024)
            assert torch.allclose(a[key], b[key], atol=tol * b[key].abs().max().item(), rtol=tol), key
    moved = (a[EMBEDDING] != loaded).any(1)  # rows some text uses (trained, or decayed as validation/test rows)
    assert 0 < int(moved.sum()) < len(loaded) // 2
    tol = fp_tolerance(torch.float32, 1024)
    assert torch.allclose(a[EMBEDDING][moved], b[EMBEDDING][moved], atol=tol * loaded.abs().max().item(), rtol=tol)
    assert torch.equal(a[EMBEDDING][~moved], loaded[~moved])  # unused rows: as loaded...
    shrink = (b[EMBEDDING][~moved] / loaded[~moved])[loaded[~moved].abs() > 1e-3]
    assert float(shrink.max()) < 1.0 and float(shrink.std()) < 1e-4  # ...where AdamW decays them by one factor
    assert runs["compact"].metrics["test"]["accuracy"] == runs["dense"].metrics["test"]["accuracy"]


def test_interrupted_compact_run_resumes_to_the_same_model(runs, tiny_model, tmp_path, monkeypatch):
    saved = interrupt_after_checkpoints(monkeypatch, 2)
    monkeypatch.setattr(compact_vocab, "MIN_BYTES", 0)
    with pytest.raises(KeyboardInterrupt):
        _run(runs["data"], tiny_model, tmp_path / "run")
    assert len(saved) == 2 and not (tmp_path / "run" / "final").exists()
    monkeypatch.undo()
    monkeypatch.setattr(compact_vocab, "MIN_BYTES", 0)
    summary = _run(runs["data"], tiny_model, tmp_path / "run", resume=True)
    assert summary.steps == runs["compact"].steps
    assert_same_weights(runs["base"] / "compact" / "final", tmp_path / "run" / "final")
    assert read_jsonl(tmp_path / "run" / "metrics.jsonl")[-1]["step"] == summary.steps


def test_resuming_with_changed_texts_is_one_line_and_keeps_the_checkpoints(runs, tiny_model, tmp_path, monkeypatch):
    import json
    import shutil

    from tuneforge.errors import UserError
    from tuneforge.recipes.finetune import VOCAB_ROWS

    data = {k: shutil.copy(v, tmp_path / v.name) for k, v in runs["data"].items()}
    saved = interrupt_after_checkpoints(monkeypatch, 1)
    monkeypatch.setattr(compact_vocab, "MIN_BYTES", 0)
    with pytest.raises(KeyboardInterrupt):
        _run(data, tiny_model, tmp_path / "run")
    rows = json.loads((tmp_path / "run" / VOCAB_ROWS).read_text())
    assert rows == sorted(rows) and len(rows) < 300 and len(saved) == 1
    with open(data["test"], "a", encoding="utf-8") as fh:  # a test text with words no text used before
        fh.write("okay average neutral 7 9,positive\n")
    with pytest.raises(UserError, match="changed since this run started"):
        _run(data, tiny_model, tmp_path / "run", resume=True)
    assert saved[0].is_dir()  # nothing lost

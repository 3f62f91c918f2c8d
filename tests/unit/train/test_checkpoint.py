"""Checkpoints: only complete ones are listed; best weights round-trip."""
from __future__ import annotations

import json

import pytest
import torch

from tuneforge.train.checkpoint import (
    STATE_FILE,
    checkpoints_dir,
    latest_checkpoint,
    list_checkpoints,
    load_best,
    save_best,
)


def _ckpt(run, name, complete=True):
    d = checkpoints_dir(run) / name
    d.mkdir(parents=True)
    (d / "model.safetensors").write_bytes(b"x")
    if complete:
        (d / STATE_FILE).write_text(json.dumps({"step": 1}), encoding="utf-8")
    return d


def test_list_checkpoints_only_complete_oldest_first(tmp_path):
    for name in ("step-10", "step-2", "step-100", "step-9"):
        _ckpt(tmp_path, name)
    _ckpt(tmp_path, "step-200", complete=False)  # crashed mid-save
    _ckpt(tmp_path, ".tmp-step-300")  # temp folder, even with a state file
    _ckpt(tmp_path, "step-abc")
    _ckpt(tmp_path, "best")
    (checkpoints_dir(tmp_path) / "step-400").write_text("not a dir", encoding="utf-8")
    found = list_checkpoints(tmp_path)
    assert [p.name for p in found] == ["step-2", "step-9", "step-10", "step-100"]  # numeric, not lexical
    assert latest_checkpoint(tmp_path).name == "step-100"


def test_no_checkpoints(tmp_path):
    assert list_checkpoints(tmp_path) == []
    assert latest_checkpoint(tmp_path) is None
    _ckpt(tmp_path, "step-5", complete=False)
    assert latest_checkpoint(tmp_path) is None


@pytest.fixture
def tiny_classifier(tiny_model):
    from tuneforge.data.labels import LabelSpace
    from tuneforge.model.build import load_classifier

    return load_classifier(str(tiny_model), LabelSpace(("a", "b", "c"), False))


def test_save_and_load_best_round_trip(tmp_path, tiny_classifier):
    model = tiny_classifier
    assert load_best(model, tmp_path) is False  # nothing saved yet
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    save_best(model, tmp_path, 5)
    best = checkpoints_dir(tmp_path) / "best" / "model.safetensors"
    assert best.is_file()
    assert not list(best.parent.glob("*.tmp"))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    assert not torch.equal(model.classifier.weight, saved["classifier.weight"])
    assert load_best(model, tmp_path) is True
    for k, v in model.state_dict().items():
        assert torch.equal(v, saved[k]), k


def test_save_best_overwrites_and_loads_into_fresh_model(tmp_path, tiny_classifier, tiny_model):
    from tuneforge.data.labels import LabelSpace
    from tuneforge.model.build import load_classifier

    save_best(tiny_classifier, tmp_path, 7)
    with torch.no_grad():
        tiny_classifier.classifier.weight.fill_(0.25)
    save_best(tiny_classifier, tmp_path, 7)  # the second save replaces the first
    fresh = load_classifier(str(tiny_model), LabelSpace(("a", "b", "c"), False))
    assert load_best(fresh, tmp_path)
    assert torch.all(fresh.classifier.weight == 0.25)


def test_save_best_with_tied_weights(tmp_path):
    class Tied(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(5, 3)
            self.out = torch.nn.Linear(3, 5, bias=False)
            self.out.weight = self.emb.weight

    model = Tied()
    save_best(model, tmp_path, 5)  # safetensors refuses shared storage unless untied
    other = Tied()
    assert load_best(other, tmp_path)
    assert torch.equal(other.emb.weight, model.emb.weight)
    assert torch.equal(other.out.weight, model.emb.weight)


class _FakeAccelerator:
    """Single-process stand-in: save_state writes one file into the folder it is given."""

    is_main_process = True

    def __init__(self):
        self.saved = []

    def wait_for_everyone(self):
        pass

    def save_state(self, path, safe_serialization=True):
        from pathlib import Path

        assert Path(path).is_dir() and Path(path).name.startswith(".tmp-")  # written to a temp folder first
        (Path(path) / "model.safetensors").write_bytes(b"weights")
        self.saved.append(path)

    def load_state(self, path):
        self.loaded = path


def test_save_checkpoint_renames_and_keeps_latest(tmp_path):
    from tuneforge.train.checkpoint import load_checkpoint, save_checkpoint

    acc = _FakeAccelerator()
    for step in (5, 10, 15):
        final = save_checkpoint(acc, tmp_path, step, {"step": step, "best": 0.5}, keep=2)
        assert final == checkpoints_dir(tmp_path) / f"step-{step}"
        assert (final / STATE_FILE).is_file() and (final / "model.safetensors").is_file()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-10", "step-15"]
    assert not list(checkpoints_dir(tmp_path).glob(".tmp-*"))
    state = load_checkpoint(acc, latest_checkpoint(tmp_path))
    assert state == {"step": 15, "best": 0.5}
    assert acc.loaded == str(checkpoints_dir(tmp_path) / "step-15")


def test_save_checkpoint_replaces_stale_tmp_and_same_step(tmp_path):
    from tuneforge.train.checkpoint import save_checkpoint

    stale = checkpoints_dir(tmp_path) / ".tmp-step-7"
    stale.mkdir(parents=True)
    (stale / "junk").write_text("x", encoding="utf-8")
    acc = _FakeAccelerator()
    final = save_checkpoint(acc, tmp_path, 7, {"step": 7}, keep=3)
    assert not (final / "junk").exists()
    final = save_checkpoint(acc, tmp_path, 7, {"step": 7, "again": True}, keep=3)
    assert json.loads((final / STATE_FILE).read_text(encoding="utf-8"))["again"] is True
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-7"]


def test_load_best_refuses_weights_from_another_step(tiny_classifier, tmp_path):
    # A crash between saving best/ and the step's checkpoint must not smuggle newer weights into a resumed run.
    save_best(tiny_classifier, tmp_path, 40)
    assert load_best(tiny_classifier, tmp_path, 30) is False
    assert load_best(tiny_classifier, tmp_path, 40) is True


def test_load_best_reads_into_the_parameters_and_is_strict(tmp_path):
    """Tied weights, a bf16 tensor and a buffer come back bit for bit; a model of another shape is refused."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=64, n_embd=16, n_layer=1, n_head=2, n_positions=32)
    model = GPT2LMHeadModel(config)
    model.transformer.h[0].mlp.c_fc.to(torch.bfloat16)
    save_best(model, tmp_path, 3)
    torch.manual_seed(1)
    fresh = GPT2LMHeadModel(config)
    fresh.transformer.h[0].mlp.c_fc.to(torch.bfloat16)
    storage = fresh.transformer.wte.weight.data_ptr()
    assert load_best(fresh, tmp_path, 3) is True
    assert fresh.transformer.wte.weight.data_ptr() == storage  # written in place, not replaced
    assert fresh.lm_head.weight is fresh.transformer.wte.weight
    for (name, a), (_, b) in zip(model.state_dict().items(), fresh.state_dict().items()):
        assert a.dtype == b.dtype and torch.equal(a, b), name
    assert load_best(fresh, tmp_path, 4) is False  # saved at another step
    other = GPT2LMHeadModel(GPT2Config(vocab_size=64, n_embd=32, n_layer=1, n_head=2, n_positions=32))
    with pytest.raises(RuntimeError, match="in the file"):
        load_best(other, tmp_path)

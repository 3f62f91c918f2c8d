"""The self-describing model folder and atomic writes."""
from __future__ import annotations

import json

from tuneforge.model.artifact import atomic_write_text, replace_dir, save_model_folder
from tuneforge.model.manifest import (
    EXPORT_PACKAGES,
    FORMAT,
    MANIFEST,
    Manifest,
    package_versions,
    read_manifest,
)


def test_atomic_write_text_replaces_without_leftovers(tmp_path):
    target = tmp_path / "a.json"
    atomic_write_text(target, "one")
    atomic_write_text(target, "twö")
    assert target.read_text(encoding="utf-8") == "twö"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_replace_dir_swaps_whole_folder(tmp_path):
    final, tmp = tmp_path / "final", tmp_path / ".final.tmp"
    final.mkdir()
    (final / "old.txt").write_text("old", encoding="utf-8")
    tmp.mkdir()
    (tmp / "new.txt").write_text("new", encoding="utf-8")
    replace_dir(tmp, final)
    assert [p.name for p in final.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final"]


def test_save_model_folder_and_manifest(tmp_path, tiny_model):
    from tuneforge.data.labels import LabelSpace
    from tuneforge.model.build import load_classifier, load_tokenizer, load_trained

    labels = LabelSpace(("neg", "pos"), False)
    model, tok = load_classifier(str(tiny_model), labels), load_tokenizer(str(tiny_model))
    out = save_model_folder(model, tok, tmp_path / "run" / "final", Manifest(labels=["neg", "pos"], task="classification"),
                            extra_files={"notes.txt": "hello"})
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    assert (out / "notes.txt").read_text(encoding="utf-8") == "hello"
    assert (out / MANIFEST).is_file()
    manifest = read_manifest(out)
    assert manifest.labels == ["neg", "pos"] and manifest.format == FORMAT and manifest.created
    assert "torch" in manifest.versions and "python" in manifest.versions
    assert json.loads((out / MANIFEST).read_text(encoding="utf-8")) == manifest.model_dump(mode="json")
    assert sorted(p.name for p in out.parent.iterdir()) == ["final"]  # temp folder gone
    trained, tok2 = load_trained(str(out))
    assert trained.config.id2label == {0: "neg", 1: "pos"}
    assert len(tok2) == len(tok)


def test_read_manifest_missing(tmp_path):
    # Any Hugging Face folder: no tuneforge.json, so every field holds its default.
    manifest = read_manifest(tmp_path)
    assert not (tmp_path / MANIFEST).exists()
    assert manifest == Manifest()
    assert manifest.max_length == 128 and manifest.labels == [] and manifest.export is None
    assert manifest.temperature is None and manifest.data == {} and manifest.config_sha256 is None


def test_an_old_untyped_manifest_still_loads(tmp_path):
    """A format-1 tuneforge.json (before the typed manifest): known keys read, unknown ones kept, nulls default."""
    old = {"format": 1, "task": "classification", "labels": ["a", "b"], "max_length": 64, "base_model": "minilm-l6",
           "temperature": None, "training": {"steps": 3, "train_samples_per_s": 9.5}, "some_future_key": [1, 2]}
    (tmp_path / MANIFEST).write_text(json.dumps(old), encoding="utf-8")
    manifest = read_manifest(tmp_path)
    assert manifest.format == 1 and manifest.labels == ["a", "b"] and manifest.max_length == 64
    assert manifest.temperature is None and manifest.training["train_samples_per_s"] == 9.5
    assert manifest.model_dump()["some_future_key"] == [1, 2]  # kept on a rewrite


def test_claim_folder_guards_foreign_and_busy_folders(tmp_path):
    import pytest

    from tuneforge.errors import UserError
    from tuneforge.model.artifact import claim_folder

    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.jpg").write_bytes(b"x")
    for kwargs in ({"overwrite": True}, {"replaces": True}):
        with pytest.raises(UserError, match="not a TuneForge run"):
            claim_folder(foreign, "run", ours=False, **kwargs)
    assert (foreign / "cat.jpg").exists()  # nothing lost
    ours = tmp_path / "run"
    ours.mkdir()
    (ours / "config.yaml").write_text("x")
    with pytest.raises(UserError, match="already holds a run. Pass --resume"):
        claim_folder(ours, "run", ours=True, busy=True)
    claim_folder(ours, "run", ours=True, busy=True, resume=True)
    assert ours.exists()
    claim_folder(ours, "run", ours=True, busy=True, overwrite=True)
    assert not ours.exists()
    with pytest.raises(UserError, match="is a file"):
        claim_folder(foreign / "cat.jpg", "run", ours=False)


def test_package_versions():
    v = package_versions()
    assert {"torch", "transformers", "python"} <= set(v)
    exported = package_versions(EXPORT_PACKAGES)
    assert {"onnxruntime", "torch", "python"} <= set(exported) and "datasets" not in exported

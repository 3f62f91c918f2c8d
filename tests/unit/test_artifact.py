"""The self-describing model folder and atomic writes."""
from __future__ import annotations

import json

from tuneforge.model.artifact import (
    MANIFEST,
    atomic_write_text,
    package_versions,
    read_manifest,
    replace_dir,
    save_model_folder,
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
    out = save_model_folder(model, tok, tmp_path / "run" / "final", {"labels": ["neg", "pos"], "task": "classification"},
                            extra_files={"notes.txt": "hello"})
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    assert (out / "notes.txt").read_text(encoding="utf-8") == "hello"
    manifest = read_manifest(out)
    assert manifest["labels"] == ["neg", "pos"] and manifest["format"] == 1
    assert "torch" in manifest["versions"] and "python" in manifest["versions"]
    assert json.loads((out / MANIFEST).read_text(encoding="utf-8")) == manifest
    assert sorted(p.name for p in out.parent.iterdir()) == ["final"]  # temp folder gone
    trained, tok2 = load_trained(str(out))
    assert trained.config.id2label == {0: "neg", 1: "pos"}
    assert len(tok2) == len(tok)


def test_read_manifest_missing(tmp_path):
    assert read_manifest(tmp_path) == {}


def test_package_versions():
    v = package_versions()
    assert {"torch", "transformers", "python"} <= set(v)

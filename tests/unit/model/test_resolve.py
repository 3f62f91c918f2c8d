"""Model name resolution: alias, local folder, hub id, and clear errors for anything else."""
from __future__ import annotations

from pathlib import Path

import pytest

from tuneforge.errors import UserError
from tuneforge.model.resolve import is_offline, resolve_model


def test_alias_resolves_to_local_folder_with_config():
    path = Path(resolve_model("minilm-l6"))
    assert path.is_dir()
    assert (path / "config.json").is_file()


def test_local_folder_is_returned(tiny_model):
    assert resolve_model(str(tiny_model)) == str(tiny_model)


def test_nonexistent_relative_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as exc:
        resolve_model("./nope")
    assert "'./nope' does not exist" in str(exc.value) and "minilm-l6" in str(exc.value)


@pytest.mark.parametrize("name", ["/definitely/not/here", "~/no-such-model-dir-xyz", "runs/x/final", "plainword"])
def test_other_nonexistent_names(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        resolve_model(name)


def test_folder_without_config(tmp_path):
    folder = tmp_path / "empty_model"
    folder.mkdir()
    with pytest.raises(UserError) as exc:
        resolve_model(str(folder))
    assert "no config.json" in str(exc.value) and str(folder) in str(exc.value)


def test_existing_file_is_not_a_model(tmp_path):
    f = tmp_path / "model.bin"
    f.write_bytes(b"x")
    with pytest.raises(UserError):
        resolve_model(str(f))


def test_hub_id_returned_unchanged(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no local folder of that name
    assert resolve_model("org/name") == "org/name"
    assert resolve_model("bert-base-chinese/x") == "bert-base-chinese/x"


def test_is_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert is_offline()
    for value in ("0", "", "false"):
        monkeypatch.setenv("HF_HUB_OFFLINE", value)
        assert not is_offline()

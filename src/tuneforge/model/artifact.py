"""The self-describing model folder (`final/`): HF weights + tokenizer + tuneforge.json manifest, written atomically."""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import time
from importlib import metadata
from pathlib import Path

MANIFEST = "tuneforge.json"
PACKAGES = ("tuneforge", "torch", "transformers", "tokenizers", "accelerate", "safetensors", "datasets", "numpy")


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    out["python"] = platform.python_version()
    return out


def git_sha() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent,
                              check=True).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def replace_dir(tmp: Path, final: Path) -> None:
    """Swap a fully written folder into place; readers never see a half-written `final`."""
    old = final.with_name(f".{final.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    if old.exists():
        shutil.rmtree(old)


def save_model_folder(model, tokenizer, out: Path, manifest: dict, extra_files: dict[str, str] | None = None) -> Path:
    """Write model + tokenizer + manifest into `out` atomically (via a temp sibling folder)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    body = {"format": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "versions": package_versions(), "git_sha": git_sha(), **manifest}
    (tmp / MANIFEST).write_text(json.dumps(body, indent=2, ensure_ascii=False), encoding="utf-8")
    for name, text in (extra_files or {}).items():
        (tmp / name).write_text(text, encoding="utf-8")
    replace_dir(tmp, out)
    return out


def read_manifest(folder: str | Path) -> dict:
    p = Path(folder) / MANIFEST
    return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}

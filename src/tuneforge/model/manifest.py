"""The typed records of a run: `Manifest` (a model folder's tuneforge.json) and `RunSummary` (what a training
recipe returns and writes to summary.json). Every default lives here, once; everything reads them through
`read_manifest` and the fields, never through `dict.get(key, fallback)`.

Old folders load: an unknown or missing key falls back to the field default, and keys this version does not
know are kept (`extra="allow"`) so a newer folder read by an older TuneForge loses nothing on a rewrite.
"""
from __future__ import annotations

import json
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MANIFEST = "tuneforge.json"
FORMAT = 2  # 1: untyped dict (still read); 2: this schema
PACKAGES = ("tuneforge", "torch", "transformers", "tokenizers", "accelerate", "safetensors", "datasets", "numpy")
EXPORT_PACKAGES = ("tuneforge", "onnxruntime", "onnx", "onnxscript", "torch", "transformers")


def package_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed versions of `packages` (missing ones left out) and the Python version."""
    out = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    out["python"] = platform.python_version()
    return out


def git_sha() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).parent, check=True).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow")


class Manifest(_Record):
    """What a model folder says about itself. `task` decides how it is loaded and served."""
    format: int = FORMAT
    created: str | None = None
    versions: dict[str, str] = Field(default_factory=dict)
    git_sha: str | None = None
    task: str = "classification"  # classification | mlm | encoder (a bare encoder, e.g. an alias)
    objective: str | None = None
    base_model: str | None = None
    max_length: int = 128
    labels: list[str] = Field(default_factory=list)
    multi_label: bool = False
    config_sha256: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)  # split → {source, rows, sha256}; pretraining: corpus
    label_counts: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict)
    coverage: dict[str, Any] | None = None
    vocab_added: int = 0
    rank_weight_checksums: list[float] = Field(default_factory=list)
    temperature: float | None = None  # the ONNX predictor reads it (PyTorch reads config.json's)
    calibration: dict[str, Any] | None = None
    ci: dict[str, Any] | None = None
    baseline: dict[str, Any] | None = None
    export: dict[str, Any] | None = None  # set in `tuneforge export` folders

    def stamped(self) -> Manifest:
        """This manifest with creation time, package versions and git sha of now."""
        return self.model_copy(update={"format": FORMAT, "created": _now(), "versions": package_versions(),
                                       "git_sha": git_sha()})

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, ensure_ascii=False)


def read_manifest(folder: str | Path) -> Manifest:
    """The folder's manifest; defaults when it has none (any Hugging Face folder)."""
    p = Path(folder) / MANIFEST
    raw = json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}
    return Manifest.model_validate({k: v for k, v in raw.items() if v is not None})


class RunSummary(_Record):
    """What a training recipe returns and writes to the run folder's summary.json."""
    task: str
    run_dir: str
    final: str
    metrics: dict[str, Any]  # split → metrics (pretraining: the held-out metrics)
    steps: int
    best_step: int | None = None
    stop_reason: str | None = None
    train_seconds: float = 0.0
    samples_per_s: float = 0.0
    tokens: int = 0
    tokens_per_s: float = 0.0
    mfu: float | None = None
    peak_flops: float | None = None
    flops_per_token: float | None = None
    report: str | None = None  # None on every process but the main one
    report_split: str | None = None
    initial_metrics: dict[str, Any] | None = None  # held-out metrics before training (pretraining)
    warning: str | None = None
    # classification
    vocab_added: int = 0
    coverage: dict[str, Any] | None = None
    data_check: dict[str, Any] | None = None
    calibration: dict[str, Any] | None = None
    baseline: dict[str, Any] | None = None
    ci: dict[str, Any] | None = None
    # pretraining
    corpus: dict[str, Any] | None = None

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, ensure_ascii=False)

"""What GET /v1/model reports: name, task, labels, version and hashes of the served model folder."""
from __future__ import annotations

from importlib import metadata
from pathlib import Path

from tuneforge.data.sources import file_sha256
from tuneforge.model.manifest import Manifest, read_manifest

WEIGHT_PATTERNS = ("model.onnx", "*.safetensors", "pytorch_model*.bin")


def _name(folder: Path) -> str:
    # runs/x/final → "x"; runs/x/run/final → "x" would be a guess, so only `final` is looked through.
    folder = folder.resolve()
    return folder.parent.name if folder.name == "final" and folder.parent.name else folder.name


def describe_model(predictor, folder: str | None) -> dict:
    """Computed once at startup: hashing a large weight file per request would be wasted work."""
    path = Path(folder) if folder else None
    manifest = read_manifest(path) if path and path.is_dir() else Manifest()
    hashes: dict[str, str] = {}
    if path and path.is_dir():
        for pattern in WEIGHT_PATTERNS:
            for file in sorted(path.glob(pattern)):
                hashes[file.name] = file_sha256(file)
    if manifest.config_sha256:
        hashes["config_sha256"] = manifest.config_sha256
    for split, entry in manifest.data.items():
        if isinstance(entry, dict) and entry.get("sha256"):
            hashes[f"data.{split}"] = entry["sha256"]
    labels = predictor.labels
    # A causal LM (serve.generator.ServedGenerator) names its own task; max_length is then its context.
    task = getattr(predictor, "task", None) or ("classification" if labels is not None else "encoder")
    return {"name": _name(path) if path else "model", "task": task,
            "chat": getattr(predictor, "has_chat_template", None),
            "labels": list(labels.names) if labels is not None else [],
            "multi_label": bool(labels.multi_label) if labels is not None else False,
            "backend": "onnx" if getattr(predictor, "session", None) is not None else "pytorch",
            "version": metadata.version("tuneforge"), "created": manifest.created, "hashes": hashes,
            "max_length": int(predictor.max_length), "manifest": manifest.model_dump(mode="json")}

"""`tuneforge export`: a model folder → a deployable ONNX folder (graph, tokenizer, config, manifest), kept only
when it passes the parity check against PyTorch on real texts."""
from __future__ import annotations

import importlib.resources
import shutil
import time
from pathlib import Path

import numpy as np

from tuneforge.config import DataConfig
from tuneforge.data.encode import Encoded, encode_texts
from tuneforge.data.labels import LabelSpace
from tuneforge.data.sources import read_texts
from tuneforge.data.splits import load_labelled
from tuneforge.errors import UserError, closest
from tuneforge.export.onnx import (
    DEFAULT_OPSET,
    MIN_OPSET,
    export_module,
    export_onnx,
    graph_output,
    torch_forward,
)
from tuneforge.export.parity import (
    DEFAULT_MAX_ACCURACY_DROP,
    DEFAULT_TOLERANCE,
    measure,
    violations,
)
from tuneforge.export.quantize import quantize_int8
from tuneforge.export.runtime import ONNX_FILE, onnx_forward, open_session
from tuneforge.model.artifact import claim_folder, replace_dir
from tuneforge.model.build import load_for_inference
from tuneforge.model.manifest import EXPORT_PACKAGES, MANIFEST, Manifest, package_versions, read_manifest
from tuneforge.model.resolve import resolve_model

FORMATS = ("onnx",)
QUANTIZATIONS = ("none", "int8")
MAX_CHECK_ROWS = 2000  # parity runs every text through PyTorch and each graph; the first rows suffice
DEMO_CHECK_ROWS = 128  # without --check-data: evenly spaced rows of the bundled EN + ZH demo reviews
PROVENANCE = ("metrics.jsonl", "training_config.yaml")  # small files of a fine-tuned final/ that travel along


def _validate(fmt: str, quantize: str, opset: int, tolerance: float, max_accuracy_drop: float) -> None:
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt}: unknown export format; use one of: {', '.join(FORMATS)}.{closest(fmt, FORMATS)}")
    if quantize not in QUANTIZATIONS:
        raise UserError(f"--quantize {quantize}: use one of: {', '.join(QUANTIZATIONS)}.{closest(quantize, QUANTIZATIONS)}")
    if opset < MIN_OPSET:
        raise UserError(f"--opset {opset}: use {MIN_OPSET} or newer (default {DEFAULT_OPSET}).")
    if tolerance < 0 or max_accuracy_drop < 0:
        raise UserError("--tolerance and --max-accuracy-drop must be 0 or more.")


def _check_output(out: Path, source: Path) -> None:
    """Never replace the model being exported, nor a folder that is not an earlier export."""
    out, source = out.resolve(), source.resolve()
    if out == source or out in source.parents:
        raise UserError(f"--output {out}: would replace the model being exported ({source}); choose another folder.")
    claim_folder(out, "export", ours=out.is_dir() and read_manifest(out).export is not None, replaces=True)


def _check_set(check_data: str | None, columns: tuple[str, str, str | None],
               labels: LabelSpace | None) -> tuple[list[str], np.ndarray | None, str]:
    """Texts (and label ids, for a classifier with labelled data) for the parity check, and where they came from.
    Texts are cleaned (NFKC, whitespace) as the predictor cleans them by default."""
    if check_data is None:
        demo = importlib.resources.files("tuneforge.resources.demo") / "reviews.csv"
        texts = read_texts(str(demo), "text")
        step = max(1, len(texts) // DEMO_CHECK_ROWS)
        return texts[::step][:DEMO_CHECK_ROWS], None, "bundled demo reviews"
    text_column, label_column, separator = columns
    if labels is None:  # an encoder: texts only
        return read_texts(check_data, text_column)[:MAX_CHECK_ROWS], None, check_data
    cfg = DataConfig(text_column=text_column, label_column=label_column, label_separator=separator)
    split = load_labelled(check_data, cfg, "check")
    n = min(len(split.texts), MAX_CHECK_ROWS)
    return split.texts[:n], labels.encode(split.labels[:n], check_data), check_data


def _graphs(model, tmp: Path, quantize: str, opset: int, name: str) -> dict:
    """Write model.onnx (fp32, or int8 with the fp32 graph kept aside for the check); returns export facts."""
    fp32 = tmp / (ONNX_FILE if quantize == "none" else "model.fp32.onnx")
    info = export_onnx(model, fp32, opset, name)
    info["fp32_bytes"] = fp32.stat().st_size
    if quantize == "int8":
        info["quantization"] = quantize_int8(fp32, tmp / ONNX_FILE)
        info["int8_bytes"] = (tmp / ONNX_FILE).stat().st_size
    else:
        info["quantization"] = None
    return info


def _parity(model, tokenizer, tmp: Path, texts: list[str], labels, label_space, max_length: int) -> dict:
    data: Encoded = encode_texts(tokenizer, texts, max_length)
    graphs = {"fp32": tmp / "model.fp32.onnx", "int8": tmp / ONNX_FILE}
    if not graphs["fp32"].is_file():
        graphs = {"fp32": tmp / ONNX_FILE}
    candidates = {k: onnx_forward(open_session(p)) for k, p in graphs.items()}
    multi = bool(label_space and label_space.multi_label)
    return measure(torch_forward(export_module(model)), candidates, data, tokenizer.pad_token_id or 0,
                   classifier=label_space is not None, multi_label=multi, labels=labels)


def _write_folder(tmp: Path, source: Path, model, tokenizer, manifest: Manifest, section: dict) -> None:
    (tmp / "model.fp32.onnx").unlink(missing_ok=True)  # the int8 folder ships one graph
    model.config.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    for name in PROVENANCE:
        if (source / name).is_file():
            shutil.copyfile(source / name, tmp / name)
    (tmp / MANIFEST).write_text(manifest.model_copy(update={"export": section}).to_json(), encoding="utf-8")


def export(model_path: str, output: str, fmt: str = "onnx", quantize: str = "none", check_data: str | None = None,
           text_column: str = "text", label_column: str = "label", label_separator: str | None = None,
           opset: int = DEFAULT_OPSET, tolerance: float = DEFAULT_TOLERANCE,
           max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP) -> dict:
    """Export, check parity, and swap the folder into place; on any failure nothing is left at `output`."""
    _validate(fmt, quantize, opset, tolerance, max_accuracy_drop)
    source, out = Path(resolve_model(model_path)), Path(output)
    _check_output(out, source)
    manifest = read_manifest(source)
    max_length = manifest.max_length
    model, tokenizer = load_for_inference(model_path)
    label_space = LabelSpace.from_model_config(model.config) if graph_output(model) == "logits" else None
    if label_space is None:  # the graph outputs hidden states: the folder serves an encoder, whatever the source was
        manifest = manifest.model_copy(update={"task": "encoder"})
    texts, labels, where = _check_set(check_data, (text_column, label_column, label_separator), label_space)
    target = out.resolve()  # also gives `--output .` a name for the temp sibling
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        info = _graphs(model, tmp, quantize, opset, model_path)
        parity = _parity(model, tokenizer, tmp, texts, labels, label_space, max_length)
        limits = {"tolerance": tolerance, "max_accuracy_drop_points": max_accuracy_drop}
        problems = violations(parity, tolerance, max_accuracy_drop)
        if problems:
            raise UserError(f"{model_path}: the export failed its parity check on {len(texts)} texts ({where}): "
                            f"{'; '.join(problems)}. Nothing was written to {out}.")
        section = {"format": fmt, "file": ONNX_FILE, "source": str(model_path), **info,
                   "parity": {"texts": len(texts), "data": where, "limits": limits, **parity},
                   "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "versions": package_versions(EXPORT_PACKAGES)}
        _write_folder(tmp, source, model, tokenizer, manifest, section)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_dir(tmp, target)
    return {"folder": str(out), **section}

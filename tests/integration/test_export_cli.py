"""`tuneforge export` through the CLI: fp32 and int8 folders, parity, the ONNX predictor, failures that leave
nothing behind, and the real default model."""
from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tfi_helpers import assert_ok, assert_user_error, read_jsonl, run_cli, sha256, trained_run

TEXTS = ["great", "the service was awful and the food was terrible and the room was really very slow overall",
         "lovely happy staff", "bad", "this phone is superb and the app is excellent", "ugly broken delivery", "nice"]
EXPECTED = ["positive", "negative", "positive", "negative", "positive", "negative", "positive"]
ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # the suite shares two cores


@pytest.fixture(scope="module")
def exports(tmp_path_factory, tiny_model):
    """The toy classifier exported fp32 and int8 (both checked on the labelled test file), and the bare encoder."""
    trained = trained_run(tmp_path_factory, tiny_model)
    base = trained["dir"]
    check = ["--check-data", "test.csv", "--text-column", "text", "--label-column", "label"]
    commands = {"fp32": ["export", "--model", "run/final", "--format", "onnx", *check, "--output", "exported"],
                "int8": ["export", "--model", "run/final", "--quantize", "int8", *check, "--output", "exported-int8"],
                "encoder": ["export", "--model", tiny_model, "--output", "exported-encoder"]}
    procs = {name: run_cli(args, cwd=base, **ONE_THREAD) for name, args in commands.items()}
    for proc in procs.values():
        assert_ok(proc)
    return {"base": base, "final": trained["final"], "procs": procs,
            **{name: base / args[-1] for name, args in commands.items()}}


def _export_section(folder) -> dict:
    return json.loads((folder / "tuneforge.json").read_text(encoding="utf-8"))["export"]


def test_fp32_folder_config_tokenizer_and_manifest(exports):
    folder = exports["fp32"]
    names = {p.name for p in folder.iterdir()}
    assert {"model.onnx", "config.json", "tokenizer.json", "tokenizer_config.json", "tuneforge.json"} <= names
    assert not any(n.endswith(".safetensors") for n in names)
    assert not [p for p in exports["base"].iterdir() if p.name.startswith(".exported")]  # no temp/old folders
    config = json.loads((folder / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    manifest = json.loads((folder / "tuneforge.json").read_text())
    original = json.loads((exports["final"] / "tuneforge.json").read_text())
    assert manifest["config_sha256"] == original["config_sha256"] and manifest["labels"] == ["negative", "positive"]
    section = manifest["export"]
    assert section["format"] == "onnx" and section["opset"] >= 17 and section["quantization"] is None
    assert section["inputs"] == ["input_ids", "attention_mask"] and section["output_name"] == "logits"
    assert section["versions"]["onnxruntime"]
    parity = section["parity"]
    assert parity["texts"] == 40 and parity["data"] == "test.csv" and set(parity) >= {"fp32", "limits"}
    assert parity["fp32"]["max_abs_diff"] < 1e-4
    assert parity["fp32"]["accuracy"] == parity["fp32"]["pytorch_accuracy"] == 1.0
    assert "parity on 40 texts" in exports["procs"]["fp32"].stdout


def test_onnx_predictor_equals_pytorch(exports):
    import tuneforge
    from tuneforge.serve.onnx_backend import OnnxPredictor

    onnx_p, torch_p = tuneforge.load(str(exports["fp32"]), threads=1), tuneforge.load(str(exports["final"]))
    assert isinstance(onnx_p, OnnxPredictor)
    ours, theirs = onnx_p.predict(TEXTS), torch_p.predict(TEXTS)
    assert [r["label"] for r in ours] == [r["label"] for r in theirs] == EXPECTED
    assert np.abs(onnx_p.predict_proba(TEXTS) - torch_p.predict_proba(TEXTS)).max() < 1e-5


@pytest.mark.parametrize("n", [1, 7])
def test_dynamic_batch_and_sequence(exports, n):
    """Straight through onnxruntime: batch 1, and batch 7 of different lengths (padded), match PyTorch."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tuneforge.export.runtime import onnx_forward, open_session

    tokenizer = AutoTokenizer.from_pretrained(exports["fp32"])
    enc = tokenizer(TEXTS[:n], padding=True, return_tensors="np")
    ids, mask = enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)
    assert n == 1 or len(set(mask.sum(1))) > 3
    out = onnx_forward(open_session(exports["fp32"] / "model.onnx", threads=1))(ids, mask)
    model = AutoModelForSequenceClassification.from_pretrained(exports["final"]).eval()
    with torch.inference_mode():
        ref = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).logits.numpy()
    assert out.shape == (n, 2) and np.abs(out - ref).max() < 1e-4


def test_int8_export_reports_parity_and_predicts(exports):
    folder = exports["int8"]
    assert "model.onnx" in {p.name for p in folder.iterdir()} and not (folder / "model.fp32.onnx").exists()
    section = _export_section(folder)
    assert section["quantization"]["weights"] == "int8" and section["quantization"]["per_channel"] is True
    assert section["int8_bytes"] < section["fp32_bytes"] == (exports["fp32"] / "model.onnx").stat().st_size
    fp32, int8 = section["parity"]["fp32"], section["parity"]["int8"]
    assert fp32["max_abs_diff"] < 1e-4
    assert int8["label_agreement"] >= 0.95 and int8["accuracy_drop_points"] <= 0.5
    assert {"max_abs_diff", "accuracy", "pytorch_accuracy"} <= int8.keys()
    stdout = exports["procs"]["int8"].stdout
    assert "int8" in stdout and "label_agreement" in stdout
    import tuneforge

    assert [r["label"] for r in tuneforge.load(str(folder), threads=1).predict(TEXTS)] == EXPECTED


def test_predict_and_embed_cli_read_exported_folders(exports, tiny_model):
    base = exports["base"]
    (base / "texts.txt").write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    assert_ok(run_cli(["predict", "--model", "exported", "--input", "texts.txt", "--output", "p.jsonl"], cwd=base))
    assert [r["label"] for r in read_jsonl(base / "p.jsonl")] == EXPECTED
    for model, out in (("exported-encoder", "onnx.npy"), (str(tiny_model), "torch.npy")):
        assert_ok(run_cli(["embed", "--model", model, "--input", "texts.txt", "--output", out], cwd=base))
    onnx_v, torch_v = np.load(base / "onnx.npy"), np.load(base / "torch.npy")
    assert onnx_v.shape == torch_v.shape == (len(TEXTS), 32)
    assert np.abs(onnx_v - torch_v).max() < 1e-4  # mean pooling, as PyTorch does it
    assert _export_section(exports["encoder"])["parity"]["fp32"]["max_abs_diff"] < 1e-4


@pytest.fixture(scope="module")
def failures(exports, tiny_model):
    """Commands that must fail with one line and exit 2, run a few at a time."""
    base = exports["base"]
    shutil.copytree(exports["fp32"], base / "previous")  # an earlier export that a failed one must not touch
    commands = {
        "parity": ["export", "--model", "run/final", "--tolerance", "1e-12", "--output", "previous"],
        "missing_model": ["export", "--model", "./no-such-model", "--output", "x"],
        "unknown_format": ["export", "--model", "run/final", "--format", "tflite", "--output", "x"],
        "unknown_quantize": ["export", "--model", "run/final", "--quantize", "int4", "--output", "x"],
        "over_the_model": ["export", "--model", "run/final", "--output", "run"],
        "check_data_column": ["export", "--model", "run/final", "--check-data", "test.csv", "--label-column", "lbl",
                              "--output", "x"],
    }
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {name: pool.submit(run_cli, args, base, 300, **ONE_THREAD) for name, args in commands.items()}
        return {"base": base, **{name: f.result() for name, f in futures.items()}}


def test_parity_failure_exits_2_and_leaves_the_previous_export_alone(failures, exports):
    """--tolerance far below float32 noise forces the check out of its limit over an earlier export."""
    assert_user_error(failures["parity"], "parity", "--tolerance", "fp32", "Nothing was written")
    base = failures["base"]
    assert sha256(base / "previous" / "model.onnx") == sha256(exports["fp32"] / "model.onnx")
    assert sorted(p.name for p in (base / "previous").iterdir()) == sorted(p.name for p in exports["fp32"].iterdir())
    assert not [p for p in base.iterdir() if p.name.startswith(".previous")]  # no temp or old folder left


def test_bad_inputs_exit_2_with_one_line(failures):
    assert_user_error(failures["missing_model"], "no-such-model")
    assert_user_error(failures["unknown_format"], "--format", "tflite", "onnx")
    assert_user_error(failures["unknown_quantize"], "--quantize", "int4", "int8")
    assert_user_error(failures["over_the_model"], "--output", "would replace")
    assert_user_error(failures["check_data_column"], "test.csv", "lbl")
    assert not (failures["base"] / "x").exists()


@pytest.mark.integration
def test_default_model_exports_int8_with_close_embeddings(tmp_path):
    """minilm-l6 (no head) → int8 ONNX: fp32 parity from the manifest, int8 embeddings close to PyTorch's."""
    import tuneforge

    proc = run_cli(["export", "--model", "minilm-l6", "--quantize", "int8", "--output", "mini"], cwd=tmp_path,
                   timeout=120, **ONE_THREAD)
    assert_ok(proc)
    section = _export_section(tmp_path / "mini")
    assert section["output_name"] == "last_hidden_state" and section["parity"]["fp32"]["max_abs_diff"] < 1e-4
    assert section["parity"]["int8"]["min_cosine"] >= 0.95
    assert section["int8_bytes"] < section["fp32_bytes"] / 3
    sentences = ["A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell sharply today."]
    v = tuneforge.load(str(tmp_path / "mini"), threads=1).embed(sentences)
    ref = tuneforge.load("minilm-l6").embed(sentences)
    assert v.shape == (3, 384)
    cos = (v * ref).sum(1) / np.linalg.norm(v, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() > 0.95, cos
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    assert float(v[0] @ v[1]) > max(float(v[0] @ v[2]), float(v[1] @ v[2])) + 0.3


def test_export_help_mentions_every_option(tmp_path):
    from tuneforge.cli import app
    import typer.main

    proc = run_cli(["export", "--help"], cwd=tmp_path)
    assert_ok(proc)
    command = typer.main.get_command(app).commands["export"]
    options = [o for p in command.params for o in p.opts if o.startswith("--")]
    assert {"--model", "--output", "--format", "--quantize", "--check-data", "--tolerance"} <= set(options)
    for option in options:
        assert option in proc.stdout, option

"""`tuneforge export` through the CLI: fp32 and int8 folders, parity, the ONNX predictor, failures that leave
nothing behind, and the real default model."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tfi_helpers import (
    assert_ok,
    assert_user_error,
    describe,
    fp_tolerance,
    load_weights,
    read_jsonl,
    run_cli,
    sha256,
    trained_run,
)

TEXTS = ["great", "the service was awful and the food was terrible and the room was really very slow overall",
         "lovely happy staff", "bad", "this phone is superb and the app is excellent", "ugly broken delivery", "nice"]
EXPECTED = ["positive", "negative", "positive", "negative", "positive", "negative", "positive"]
ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # the suite shares two cores


def _fp32_limit(length: int, scale: float, layers: int = 2, hidden: int = 32, ffn: int = 64,
                head: bool = True) -> float:
    """ONNX Runtime's fp32 kernels vs PyTorch's: the same math in another order. `layers` layers over `length` keys,
    `hidden` and `ffn` units (then pooler and classifier, `hidden` each, with a head), at the outputs' magnitude."""
    return fp_tolerance(np.float32, layers * (length + hidden + ffn) + (2 * hidden if head else 0)) * float(scale)


def _logit_bound(final) -> float:
    """|logit| <= the classifier's |W| row sum + |b|: the pooler's tanh is in [-1, 1]."""
    w = load_weights(final)
    return (w["classifier.weight"].abs().sum(1) + w["classifier.bias"].abs()).max().item()


def _longest(tokenizer, texts) -> int:
    return max(len(tokenizer(t)["input_ids"]) for t in texts)


# Two CLI exports of the trained toy model (~10 s each): the tests that read them are slow. The same export recipe,
# parity, int8 graph and ONNX predictor in process on the tiny model: unit test_export.py (test_graph_has_named_inputs_
# dynamic_axes_and_opset, test_fp32_graph_matches_pytorch_at_any_batch_and_length, test_int8_graph_is_quantized_and_
# close, test_export_folder_describes_itself, test_onnx_predictor_embeddings_match_pytorch).
SLOW_EXPORT = pytest.mark.slow


@pytest.fixture(scope="module")
def exports(tmp_path_factory, tiny_model, tiny_encoder_onnx):
    """The toy classifier exported fp32 and int8 through the CLI (both checked on the labelled test file), and the
    bare encoder (the session's shared export, conftest.tiny_encoder_onnx: the same recipe)."""
    trained = trained_run(tmp_path_factory, tiny_model)
    base = trained["dir"]
    check = ["--check-data", "test.csv", "--text-column", "text", "--label-column", "label"]
    commands = {"fp32": ["export", "--model", "run/final", "--format", "onnx", *check, "--output", "exported"],
                "int8": ["export", "--model", "run/final", "--quantize", "int8", *check, "--output", "exported-int8"]}
    procs = {name: run_cli(args, cwd=base, **ONE_THREAD) for name, args in commands.items()}
    for proc in procs.values():
        assert_ok(proc)
    return {"base": base, "final": trained["final"], "procs": procs, "encoder": tiny_encoder_onnx[0],
            **{name: base / args[-1] for name, args in commands.items()}}


def _export_section(folder) -> dict:
    return json.loads((folder / "tuneforge.json").read_text(encoding="utf-8"))["export"]


@SLOW_EXPORT
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
    # test.csv rows are 8 tokens ([CLS], 6 words, [SEP])
    assert parity["fp32"]["max_abs_diff"] <= _fp32_limit(8, _logit_bound(exports["final"]))
    assert parity["fp32"]["accuracy"] == parity["fp32"]["pytorch_accuracy"] == 1.0
    assert "parity on 40 texts" in exports["procs"]["fp32"].stdout


@SLOW_EXPORT
def test_onnx_predictor_equals_pytorch(exports):
    import tuneforge
    from tuneforge.serve.onnx_backend import OnnxPredictor

    onnx_p, torch_p = tuneforge.load(str(exports["fp32"]), threads=1), tuneforge.load(str(exports["final"]))
    assert isinstance(onnx_p, OnnxPredictor)
    ours, theirs = onnx_p.predict(TEXTS), torch_p.predict(TEXTS)
    assert [r["label"] for r in ours] == [r["label"] for r in theirs] == EXPECTED
    # a probability moves by at most twice its logits' error
    limit = 2 * _fp32_limit(_longest(torch_p.tokenizer, TEXTS), _logit_bound(exports["final"]))
    assert np.abs(onnx_p.predict_proba(TEXTS) - torch_p.predict_proba(TEXTS)).max() <= limit


@SLOW_EXPORT
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
    assert out.shape == (n, 2) and np.abs(out - ref).max() <= _fp32_limit(ids.shape[1], _logit_bound(exports["final"]))


@SLOW_EXPORT
def test_int8_export_reports_parity_and_predicts(exports):
    folder = exports["int8"]
    assert "model.onnx" in {p.name for p in folder.iterdir()} and not (folder / "model.fp32.onnx").exists()
    section = _export_section(folder)
    assert section["quantization"]["weights"] == "int8" and section["quantization"]["per_channel"] is True
    assert section["int8_bytes"] < section["fp32_bytes"] == (exports["fp32"] / "model.onnx").stat().st_size
    fp32, int8 = section["parity"]["fp32"], section["parity"]["int8"]
    assert fp32["max_abs_diff"] <= _fp32_limit(8, _logit_bound(exports["final"]))  # test.csv rows: 8 tokens
    # not rounding bounds: int8 quantization error, judged by labels and accuracy (the product's limits)
    assert int8["label_agreement"] >= 0.95 and int8["accuracy_drop_points"] <= 0.5
    assert {"max_abs_diff", "accuracy", "pytorch_accuracy"} <= int8.keys()
    stdout = exports["procs"]["int8"].stdout
    assert "int8" in stdout and "label_agreement" in stdout
    import tuneforge

    assert [r["label"] for r in tuneforge.load(str(folder), threads=1).predict(TEXTS)] == EXPECTED


@SLOW_EXPORT
def test_predict_and_embed_cli_read_exported_folders(exports, tiny_model):
    base = exports["base"]
    (base / "texts.txt").write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    assert_ok(run_cli(["predict", "--model", "exported", "--input", "texts.txt", "--output", "p.jsonl"], cwd=base))
    assert [r["label"] for r in read_jsonl(base / "p.jsonl")] == EXPECTED
    for model, out in ((str(exports["encoder"]), "onnx.npy"), (str(tiny_model), "torch.npy")):
        assert_ok(run_cli(["embed", "--model", model, "--input", "texts.txt", "--output", out], cwd=base))
    onnx_v, torch_v = np.load(base / "onnx.npy"), np.load(base / "torch.npy")
    assert onnx_v.shape == torch_v.shape == (len(TEXTS), 32)
    import tuneforge

    torch_p = tuneforge.load(str(tiny_model))
    _, hidden, _ = torch_p.embed(TEXTS, return_hidden=True)
    length, scale = _longest(torch_p.tokenizer, TEXTS), np.abs(hidden).max()
    # mean pooling, as PyTorch does it: the encoder's rounding, plus a mean over the length
    limit = _fp32_limit(length, scale, head=False) + fp_tolerance(np.float32, length) * scale
    assert np.abs(onnx_v - torch_v).max() <= limit
    # the parity texts (bundled demo reviews) run up to max_length tokens
    max_length = json.loads((exports["encoder"] / "tuneforge.json").read_text())["max_length"]
    assert _export_section(exports["encoder"])["parity"]["fp32"]["max_abs_diff"] <= _fp32_limit(max_length, scale,
                                                                                                 head=False)


@pytest.fixture(scope="module")
def failures(exports):
    """An export that fails its parity check over an earlier export: exit 2 with one line, nothing replaced.

    It fails after its graph is written. That graph is the fp32 export's own (the same run/final, the
    same opset) with a note in its doc string, copied in place of a second ~8 s trace: the parity check and the
    clean-up run as they do after a real export, and a graph that wrongly replaced `previous` would show."""
    import onnx

    base = exports["base"]
    shutil.copytree(exports["fp32"], base / "previous")  # an earlier export that a failed one must not touch
    section, traced = _export_section(exports["fp32"]), []

    def same_graph(model, path, opset, name="model"):
        graph = onnx.load(str(exports["fp32"] / "model.onnx"))
        graph.doc_string = "the parity-failure test's graph"
        onnx.save(graph, str(path))
        traced.append((opset, path))
        return {k: section[k] for k in ("exporter", "opset", "inputs", "output_name", "dynamic_axes")}

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("tuneforge.recipes.export.export_onnx", same_graph)
        parity = run_cli(["export", "--model", "run/final", "--tolerance", "1e-12", "--output", "previous"], base,
                         **ONE_THREAD)
    assert [opset for opset, _ in traced] == [section["opset"]], describe(parity)
    return {"base": base, "parity": parity, "traced": traced}


@pytest.fixture(scope="module")
def bad_exports(tmp_path_factory, tiny_model):
    """Commands that must fail with one line and exit 2 before anything is exported."""
    base = trained_run(tmp_path_factory, tiny_model)["dir"]
    commands = {
        "missing_model": ["export", "--model", "./no-such-model", "--output", "x"],
        "unknown_format": ["export", "--model", "run/final", "--format", "tflite", "--output", "x"],
        "unknown_quantize": ["export", "--model", "run/final", "--quantize", "int4", "--output", "x"],
        "over_the_model": ["export", "--model", "run/final", "--output", "run"],
        "check_data_column": ["export", "--model", "run/final", "--check-data", "test.csv", "--label-column", "lbl",
                              "--output", "x"],
    }
    return {"base": base, **{name: run_cli(args, base, **ONE_THREAD) for name, args in commands.items()}}


@SLOW_EXPORT
def test_parity_failure_exits_2_and_leaves_the_previous_export_alone(failures, exports):
    """--tolerance far below float32 noise forces the check out of its limit over an earlier export."""
    assert_user_error(failures["parity"], "parity", "--tolerance", "fp32", "Nothing was written")
    base = failures["base"]
    assert sha256(base / "previous" / "model.onnx") == sha256(exports["fp32"] / "model.onnx")
    assert sha256(base / "previous" / "tuneforge.json") == sha256(exports["fp32"] / "tuneforge.json")
    assert sorted(p.name for p in (base / "previous").iterdir()) == sorted(p.name for p in exports["fp32"].iterdir())
    assert not failures["traced"][0][1].exists()  # the failed export's graph went with its temp folder
    assert not [p for p in base.iterdir() if p.name.startswith(".previous")]  # no temp or old folder left


def test_bad_inputs_exit_2_with_one_line(bad_exports):
    assert_user_error(bad_exports["missing_model"], "no-such-model")
    assert_user_error(bad_exports["unknown_format"], "--format", "tflite", "onnx")
    assert_user_error(bad_exports["unknown_quantize"], "--quantize", "int4", "int8")
    assert_user_error(bad_exports["over_the_model"], "--output", "would replace")
    assert_user_error(bad_exports["check_data_column"], "test.csv", "lbl")
    assert not (bad_exports["base"] / "x").exists()
    assert (bad_exports["base"] / "run" / "final" / "model.safetensors").is_file()  # the model was not replaced


# slow: exports the real model. int8 quantization and parity on the tiny model: unit test_export.py::test_int8_graph_
# is_quantized_and_close.
@pytest.mark.slow
@pytest.mark.integration
def test_default_model_exports_int8_with_close_embeddings(tmp_path):
    """minilm-l6 (no head) → int8 ONNX: fp32 parity from the manifest, int8 embeddings close to PyTorch's."""
    import tuneforge

    proc = run_cli(["export", "--model", "minilm-l6", "--quantize", "int8", "--output", "mini"], cwd=tmp_path,
                   timeout=120, **ONE_THREAD)
    assert_ok(proc)
    section = _export_section(tmp_path / "mini")
    sentences = ["A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell sharply today."]
    ref, hidden, _ = tuneforge.load("minilm-l6").embed(sentences, return_hidden=True)
    # fp32 parity: MiniLM-L6 is 6 layers of 384 hidden and 1536 FFN units, over texts up to max_length tokens, at
    # its hidden states' magnitude
    max_length = json.loads((tmp_path / "mini" / "tuneforge.json").read_text())["max_length"]
    limit = _fp32_limit(max_length, np.abs(hidden).max(), layers=6, hidden=384, ffn=1536, head=False)
    assert section["output_name"] == "last_hidden_state" and section["parity"]["fp32"]["max_abs_diff"] <= limit
    # not rounding bounds: int8 quantization error, judged by cosine (the product's limit) and size
    assert section["parity"]["int8"]["min_cosine"] >= 0.95
    assert section["int8_bytes"] < section["fp32_bytes"] / 3
    v = tuneforge.load(str(tmp_path / "mini"), threads=1).embed(sentences)
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

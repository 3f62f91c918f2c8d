"""A text's probabilities do not depend on the texts batched with it (issue 17): `tuneforge serve` merges concurrent
requests into one model call, so one user's answer must not move with another user's traffic.

For each backend and precision the server offers (PyTorch eager fp32, bf16 and int8; ONNX exports fp32 and int8),
on the tiny classifier: one text alone, then inside a batch of 31 others of varied lengths (at non-first positions,
beside texts of its own token length), in one forward pass and in serve's sub-batches of 8. Per-tensor int8
activation scales (the batch's range, padding included) moved the answers by ~1e-4 here and ~0.1 on MiniLM-L6.
"""
from __future__ import annotations

import json
import random
import shutil

import numpy as np
import pytest
from conftest import FILLER, NEGATIVE, POSITIVE

TOLERANCE = 1e-5  # absolute, on each probability
PROBE = "the staff was really nice but the room was slow and the food was bad"


def _others(n: int = 31) -> list[str]:
    """n texts of 1 to 60 words; a few with the probe's length, so it shares a length group."""
    rng = random.Random(0)
    words = FILLER + POSITIVE + NEGATIVE
    lengths = [rng.randint(1, 60) for _ in range(n - 3)] + [len(PROBE.split())] * 3
    rng.shuffle(lengths)
    return [" ".join(rng.choice(words) for _ in range(k)) for k in lengths]


@pytest.fixture(scope="module")
def onnx_dirs(tiny_classifier_onnx, tmp_path_factory):
    """`tuneforge export` folders of the tiny classifier: fp32 (conftest's, exported once per session), and int8
    quantized from that graph as `--quantize int8` does (quantize_int8; one torch.export trace, not two)."""
    from tuneforge.export.quantize import quantize_int8

    fp32 = tiny_classifier_onnx[0]
    int8 = tmp_path_factory.mktemp("batch-independence") / "int8"
    shutil.copytree(fp32, int8)
    manifest = json.loads((int8 / "tuneforge.json").read_text())
    manifest["export"]["quantization"] = quantize_int8(fp32 / "model.onnx", int8 / "model.onnx")
    (int8 / "tuneforge.json").write_text(json.dumps(manifest))
    return {"fp32": fp32, "int8": int8}




def _largest_difference(predictor) -> float:
    others, worst = _others(), 0.0
    # everything in one forward pass, and serve's sorted sub-batches of 8 (moot when each text runs alone)
    for batch_size in (64,) if predictor.one_text_per_forward else (64, 8):
        predictor.batch_size = batch_size
        alone = predictor.predict_proba([PROBE])[0]
        for position in (16,):  # the middle of 32; serve sorts by length, so its row follows from its length
            batch = others[:position] + [PROBE] + others[position:]
            worst = max(worst, float(np.abs(predictor.predict_proba(batch)[position] - alone).max()))
    return worst


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
def test_pytorch_answers_do_not_depend_on_the_batch(precision, tiny_classifier_dir):
    import tuneforge

    predictor = tuneforge.load(str(tiny_classifier_dir), precision=precision)
    assert predictor.labels is not None
    assert _largest_difference(predictor) <= TOLERANCE


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_onnx_answers_do_not_depend_on_the_batch(precision, onnx_dirs):
    import tuneforge

    predictor = tuneforge.load(str(onnx_dirs[precision]), threads=1)
    assert predictor.labels is not None
    assert _largest_difference(predictor) <= TOLERANCE


def test_an_int8_export_with_per_tensor_activations_runs_one_text_per_forward(onnx_dirs, tmp_path):
    """int8 folders exported before per-row activation scales (DynamicQuantizeLinear in the graph) still load; the
    predictor runs them one text per forward pass, which keeps their answers independent of the batch."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    import tuneforge
    from tuneforge.export.quantize import per_tensor_activations

    old = tmp_path / "int8-per-tensor"
    shutil.copytree(onnx_dirs["fp32"], old)
    quantize_dynamic(str(onnx_dirs["fp32"] / "model.onnx"), str(old / "model.onnx"), weight_type=QuantType.QInt8,
                     per_channel=True, op_types_to_quantize=["MatMul"])
    manifest = json.loads((old / "tuneforge.json").read_text())
    manifest["export"]["quantization"] = {"method": "onnxruntime dynamic", "weights": "int8", "per_channel": True,
                                          "activations": "uint8, quantized at run time"}  # as those folders say
    (old / "tuneforge.json").write_text(json.dumps(manifest))
    predictor = tuneforge.load(str(old), threads=1)
    assert predictor.one_text_per_forward
    # without a manifest the graph itself is read
    assert per_tensor_activations(old / "model.onnx") and not per_tensor_activations(onnx_dirs["int8"] / "model.onnx")
    assert _largest_difference(predictor) <= TOLERANCE
    assert not tuneforge.load(str(onnx_dirs["int8"]), threads=1).one_text_per_forward  # per row: batched


@pytest.fixture(scope="module")
def minilm_classifier(tmp_path_factory):
    """The default model (minilm-l6) with a seeded, untrained 2-class head, as a model folder."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tuneforge.model.resolve import resolve_model

    folder = tmp_path_factory.mktemp("minilm") / "clf"
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        resolve_model("minilm-l6"), num_labels=2, id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1})
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(resolve_model("minilm-l6")).save_pretrained(folder)
    return folder


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_minilm_answers_do_not_depend_on_the_batch(precision, minilm_classifier):
    """The real default model: batched, bf16 answers moved by 8e-5 on these texts (2e-3 on SST-2 sentences; the tiny
    model's bf16 matmuls happen to be batch-invariant) and per-tensor int8 ones by 2e-3 (0.1 on SST-2)."""
    import tuneforge

    assert _largest_difference(tuneforge.load(str(minilm_classifier), precision=precision)) <= TOLERANCE

"""Using a fine-tuned model: plain transformers, `tuneforge evaluate`, `predict` and `embed` through the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tfi_helpers import (
    assert_ok,
    build_encoder,
    fp_tolerance,
    read_jsonl,
    run_cli,
    trained_run,
    write_csv,
)

PNG = b"\x89PNG\r\n\x1a\n"
TEXTS = [
    "great",
    "the service was awful and the food was terrible and the room was really very slow overall",
    "lovely happy staff",
    "bad",
    "this phone is superb and the app is excellent",
    "ugly broken delivery",
    "nice",
    "the hotel was poor",
]
EXPECTED = ["positive", "negative", "positive", "negative", "positive", "negative", "positive", "negative"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model):
    return trained_run(tmp_path_factory, tiny_model)


def _tolerance(length: int, rows: int = 1) -> float:
    """The fine-tuned tiny classifier (2 layers, 32 hidden, 64 FFN; pooler and classifier 32 each; softmax over 2
    labels) run on `length`-token batches in another order or padding, and a mean over `rows`: relative rounding."""
    return fp_tolerance(np.float32, 2 * (length + 32 + 64) + 2 * 32 + 2 + rows)


@pytest.fixture(scope="module")
def logit_scale(trained) -> float:
    """The largest |logit| of the fine-tuned model on TEXTS: what its rounding errors scale with. A probability
    moves by at most twice its logits' error."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(trained["final"]).eval()
    with torch.no_grad():
        inputs = AutoTokenizer.from_pretrained(trained["final"])(TEXTS, padding=True, return_tensors="pt")
        logits = model(**inputs).logits
    return logits.abs().max().item()


def test_final_loads_in_plain_transformers(trained):
    import transformers
    from transformers import AutoModelForSequenceClassification

    import tuneforge

    final = trained["final"]
    model = AutoModelForSequenceClassification.from_pretrained(final)
    assert model.config.id2label == {0: "negative", 1: "positive"}
    assert model.config.problem_type == "single_label_classification"
    pipe = transformers.pipeline("text-classification", model=str(final), device="cpu")
    ours = tuneforge.load(str(final)).predict(TEXTS)
    theirs = pipe(TEXTS)
    assert [r["label"] for r in theirs] == [r["label"] for r in ours]
    assert [r["label"] for r in ours] == EXPECTED
    # Plain transformers gives softmax(logits); TuneForge applies the temperature fitted on validation (if any).
    import torch

    tokenizer = transformers.AutoTokenizer.from_pretrained(final)
    with torch.no_grad():
        inputs = tokenizer(TEXTS, padding=True, return_tensors="pt")
        logits = model(**inputs).logits
    temperature = getattr(model.config, "tuneforge_temperature", 1.0)
    # The same math on other paddings (the pipeline runs one text at a time, TuneForge sorts by length); a
    # probability moves by at most twice the logits' error; TuneForge's are rounded to 6 decimals.
    tol = _tolerance(inputs["input_ids"].shape[1])
    for row, t, o in zip(logits, theirs, ours):
        assert t["score"] == pytest.approx(row.softmax(-1).max().item(), abs=2 * tol * logits.abs().max().item())
        assert o["probabilities"][o["label"]] == pytest.approx(
            (row / temperature).softmax(-1).max().item(), abs=2 * tol * logits.abs().max().item() / temperature + 1e-6)


@pytest.fixture(scope="module")
def evaluated(trained):
    base = trained["dir"]
    proc = run_cli(["evaluate", "--model", "run/final", "--data", "test.csv", "--output", "eval"], cwd=base)
    assert_ok(proc)
    return {"proc": proc, "out": base / "eval", "metrics": json.loads((base / "eval" / "metrics.json").read_text())}


def test_evaluate_cli(evaluated):
    assert "eval/metrics.json" in evaluated["proc"].stdout
    out, metrics = evaluated["out"], evaluated["metrics"]
    for key in ("accuracy", "macro_precision", "macro_recall", "macro_f1", "micro_precision", "micro_recall",
                "micro_f1", "loss", "per_class", "confusion_matrix"):
        assert key in metrics, key
    assert metrics["samples"] == 40
    assert set(metrics["per_class"]) == {"negative", "positive"}
    for cls in metrics["per_class"].values():
        assert {"precision", "recall", "f1", "support"} <= cls.keys()
    assert sum(c["support"] for c in metrics["per_class"].values()) == 40
    cm = np.array(metrics["confusion_matrix"])
    assert cm.shape == (2, 2) and cm.sum() == 40
    assert metrics["accuracy"] == pytest.approx(np.trace(cm) / 40)
    assert metrics["accuracy"] >= 0.95
    for name in ("confusion_matrix.png", "loss_curve.png"):
        assert (out / name).read_bytes()[:8] == PNG, name
    md = (out / "report.md").read_text()  # the report shows these numbers
    assert f"| accuracy | {metrics['accuracy']:.4f} |" in md and "| samples | 40 |" in md
    for name, c in metrics["per_class"].items():
        assert f"| {name} | {c['precision']:.4f} | {c['recall']:.4f} | {c['f1']:.4f} | {c['support']} |" in md, name
    assert "confusion_matrix.png" in (out / "report.html").read_text()


def test_evaluate_matches_the_runs_test_metrics(trained, evaluated, logit_scale):
    """Evaluating final/ on the test file gives what the fine-tune reported for the test split."""
    metrics = evaluated["metrics"]
    reported = json.loads((trained["final"] / "tuneforge.json").read_text())["metrics"]["test"]
    assert metrics["confusion_matrix"] == reported["confusion_matrix"]
    # The same fp32 math, perhaps batched differently: the test rows are 8 tokens ([CLS], 6 words, [SEP]), the loss
    # a mean over 40 of them; a row's cross-entropy moves by at most twice its logits' error.
    tol = _tolerance(8, rows=40)
    assert metrics["loss"] == pytest.approx(reported["loss"], rel=tol, abs=2 * tol * logit_scale)


def test_predict_cli_csv_keeps_order(trained, logit_scale):
    base = trained["dir"]
    rows = [(t, f"id{i}") for i, t in enumerate(TEXTS)]
    write_csv(base / "to_predict.csv", rows, header=("review", "id"))
    proc = run_cli(["predict", "--model", "run/final", "--input", "to_predict.csv", "--text-column", "review",
                    "--output", "out/pred.jsonl", "--batch-size", "3"], cwd=base)
    assert_ok(proc)
    preds = read_jsonl(base / "out" / "pred.jsonl")
    assert len(preds) == len(TEXTS)
    assert [p["text"] for p in preds] == TEXTS
    assert [p["label"] for p in preds] == EXPECTED
    for p in preds:
        assert set(p["probabilities"]) == {"negative", "positive"}
        # a fp32 softmax over 2 labels sums to 1 within its rounding; + 2 roundings to 6 decimals (<= 5e-7 each)
        assert sum(p["probabilities"].values()) == pytest.approx(1.0, abs=fp_tolerance(np.float32, 2) + 2 * 5e-7)
        assert p["label"] == max(p["probabilities"], key=p["probabilities"].get)
    # Batching (sorted by length, 3 at a time) must not change any row's result.
    import tuneforge

    predictor = tuneforge.load(str(trained["final"]))
    # the same math alone vs padded in a batch: the longest text's length bounds both; + 6-decimal rounding
    length = max(len(predictor.tokenizer(t)["input_ids"]) for t in TEXTS)
    limit = 2 * _tolerance(length) * logit_scale + 1e-6
    for text, p in zip(TEXTS, preds):
        alone = predictor.predict([text])[0]
        assert alone["label"] == p["label"]
        for k, v in alone["probabilities"].items():
            assert v == pytest.approx(p["probabilities"][k], abs=limit)


def test_predict_cli_txt(trained):
    base = trained["dir"]
    (base / "lines.txt").write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    proc = run_cli(["predict", "--model", "run/final", "--input", "lines.txt", "--output", "lines.jsonl"], cwd=base)
    assert_ok(proc)
    assert f"wrote {len(TEXTS)} predictions" in proc.stdout
    preds = read_jsonl(base / "lines.jsonl")
    assert [p["text"] for p in preds] == TEXTS
    assert [p["label"] for p in preds] == EXPECTED


@pytest.fixture(scope="module")
def encoder4(tmp_path_factory):
    """A tiny 4-layer encoder (no head), so last4 has four layers to concatenate."""
    return build_encoder(tmp_path_factory.mktemp("enc4") / "tiny-bert-4", layers=4)


@pytest.mark.parametrize("pooling,factor", [("mean", 1), ("cls", 1), ("last4", 4)])
def test_embed_cli_shapes(pooling, factor, encoder4, tmp_path):
    (tmp_path / "texts.txt").write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    args = ["embed", "--model", encoder4, "--input", "texts.txt", "--output", "vec.npy", "--pooling", pooling,
            "--batch-size", "3"]
    if pooling == "mean":
        args += ["--hidden-states", "hidden.npz"]
    proc = run_cli(args, cwd=tmp_path)
    assert_ok(proc)
    vectors = np.load(tmp_path / "vec.npy")
    assert vectors.shape == (len(TEXTS), 32 * factor)
    assert np.isfinite(vectors).all()
    assert not np.allclose(vectors[0], vectors[1])  # not a rounding bound: two texts' vectors differ (behavioural)
    if pooling != "mean":
        return
    hidden = np.load(tmp_path / "hidden.npz")
    states, mask = hidden["last_hidden_state"], hidden["attention_mask"]
    from transformers import AutoTokenizer

    lengths = [len(ids) for ids in AutoTokenizer.from_pretrained(encoder4)(TEXTS)["input_ids"]]
    assert states.shape == (len(TEXTS), max(lengths), 32)
    assert mask.shape == (len(TEXTS), max(lengths))
    assert mask.sum(1).tolist() == lengths  # in input order
    # The mean-pooled vectors are the masked mean of the saved hidden states, row by row.
    m = mask[..., None].astype(np.float32)
    tol = fp_tolerance(np.float32, max(lengths))  # the same masked sum over the length, in numpy vs torch
    np.testing.assert_allclose((states * m).sum(1) / m.sum(1), vectors, rtol=tol, atol=tol * np.abs(states).max())


def test_embed_fine_tuned_model(trained, tmp_path):
    """`embed` also takes a fine-tuned classifier folder: its encoder's vectors."""
    (tmp_path / "texts.txt").write_text("\n".join(TEXTS[:3]) + "\n", encoding="utf-8")
    proc = run_cli(["embed", "--model", trained["final"], "--input", "texts.txt", "--output", "vec.npy",
                    "--pooling", "cls"], cwd=tmp_path)
    assert_ok(proc)
    vectors = np.load(tmp_path / "vec.npy")
    assert vectors.shape == (3, 32)
    import tuneforge

    predictor = tuneforge.load(str(trained["final"]))
    expected = predictor.embed(TEXTS[:3], "cls")
    # the same math, perhaps batched differently: 2 layers over the padded length, 32 hidden, 64 FFN
    tol = fp_tolerance(np.float32, 2 * (max(len(predictor.tokenizer(t)["input_ids"]) for t in TEXTS[:3]) + 32 + 64))
    np.testing.assert_allclose(vectors, expected, rtol=tol, atol=tol * np.abs(expected).max())


# slow: bf16 and int8 copies of the model. Each precision against fp32, in fast: unit test_export.py::test_embed_file_at_
# each_precision_stays_close_to_fp32 and tests/unit/serve/test_batch_independence.py.
@pytest.mark.slow
def test_bf16_weights_give_the_same_labels(trained):
    import torch

    import tuneforge
    from tuneforge.errors import UserError

    fp32 = tuneforge.load(str(trained["final"]))
    bf16 = tuneforge.load(str(trained["final"]), precision="bf16")
    assert next(bf16.model.parameters()).dtype == torch.bfloat16
    a, b = fp32.predict_proba(TEXTS), bf16.predict_proba(TEXTS)
    # not a rounding bound: bf16's (fp_tolerance(torch.bfloat16, ~300) > 1) says nothing; the labels are the check
    # and 0.05 a behavioural limit on how far the probabilities may move
    assert (a.argmax(1) == b.argmax(1)).all() and abs(a - b).max() < 0.05
    assert bf16.embed(TEXTS).dtype.name == "float32"
    with pytest.raises(UserError, match="precision 'fp16'"):
        tuneforge.load(str(trained["final"]), precision="fp16")


@pytest.mark.slow  # as the bf16 test above
def test_int8_linears_keep_the_labels(trained):
    import torch

    import tuneforge

    fp32 = tuneforge.load(str(trained["final"]))
    int8 = tuneforge.load(str(trained["final"]), precision="int8")
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

    modules = list(int8.model.modules())
    assert not any(type(m) is torch.nn.Linear for m in modules)  # every float linear was swapped
    assert sum(isinstance(m, DynamicInt8Linear) for m in modules) >= 2
    weight = next(m for m in int8.model.modules() if hasattr(m, "weight") and callable(m.weight)).weight()
    assert weight.dtype == torch.qint8 and weight.qscheme() == torch.per_channel_affine  # per output channel
    a, b = fp32.predict_proba(TEXTS), int8.predict_proba(TEXTS)
    # not a rounding bound: int8 weights carry quantization error; the labels are the check, 0.1 a behavioural limit
    assert (a.argmax(1) == b.argmax(1)).all() and abs(a - b).max() < 0.1
    assert int8.embed(TEXTS).shape == fp32.embed(TEXTS).shape

"""`train.contrastive=on` end to end on the tiny model: the loop trains the encoder on sentence pairs, the saved
model is a plain BERT classifier whose head is the logistic regression of its own pooled training vectors, and a
killed run resumes to the same weights."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file
from tfi_helpers import assert_ok, assert_same_weights, interrupt_after_checkpoints, make_rows, run_cli, write_csv

ARGS = ["--set", "train.contrastive=on", "--set", "train.contrastive_pairs=96", "--set", "eval.every_steps=3",
        "--set", "runtime.progress=false", "--set", "runtime.threads=1", "--set", "runtime.device=cpu",
        "--set", "eval.baseline=false", "--set", "eval.bootstrap_samples=0"]


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_model):
    base = tmp_path_factory.mktemp("contrastive")
    for name, n, seed in (("train", 48, 1), ("val", 24, 2), ("test", 24, 3)):
        write_csv(base / f"{name}.csv", make_rows(n, seed))
    proc = run_cli(["finetune", "--train", "train.csv", "--validation", "val.csv", "--test", "test.csv",
                    "--model", tiny_model, "--output", "run", *ARGS], cwd=base)
    assert_ok(proc)
    return {"dir": base, "run": base / "run", "stdout": proc.stdout + proc.stderr}


def test_the_run_trains_on_pairs_and_records_the_choice(run):
    config = yaml.safe_load((run["run"] / "config.yaml").read_text())
    assert config["train"]["contrastive"] == "on" and config["train"]["contrastive_pairs"] == 96
    assert config["train"]["batch_size"] == 16 and config["train"]["learning_rate"] == pytest.approx(2e-5)
    assert "96 sentence pairs" in run["stdout"]
    records = [json.loads(x) for x in (run["run"] / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r.get("split") == "validation"] == [3, 6]  # 96 pairs / 16 = 6 steps
    summary = json.loads((run["run"] / "summary.json").read_text())
    assert summary["best_step"] == 6  # the last weights are kept, whatever validation said (SetFit-style)


def test_the_saved_head_is_the_regression_of_the_saved_encoder(run):
    from sklearn.linear_model import LogisticRegression
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    final = run["run"] / "final"
    model = AutoModelForSequenceClassification.from_pretrained(final).eval()  # plain transformers
    tokenizer = AutoTokenizer.from_pretrained(final)
    rows = make_rows(48, 1)
    batch = tokenizer([t for t, _ in rows], padding=True, return_tensors="pt")
    with torch.no_grad():
        vectors = model.bert(**batch).pooler_output.numpy()
        probs = model(**batch).logits.softmax(-1).numpy()
    label_ids = {name: i for i, name in model.config.id2label.items()}
    targets = np.array([label_ids[label] for _, label in rows])
    expected = LogisticRegression(C=1.0, max_iter=2000, random_state=42).fit(vectors, targets).predict_proba(vectors)
    np.testing.assert_allclose(probs, expected, atol=2e-4)


def test_the_encoder_moved_and_the_pooler_with_it(run, tiny_model):
    before = load_file(str(tiny_model / "model.safetensors"))
    after = load_file(str(run["run"] / "final" / "model.safetensors"))
    key = next(k for k in after if k.endswith("pooler.dense.weight"))
    assert not torch.equal(before[key.removeprefix("bert.")], after[key])  # the saved encoder has no "bert." prefix


def test_an_interrupted_run_resumes_to_the_same_model(run, tiny_model, monkeypatch):
    args = ["finetune", "--train", "train.csv", "--validation", "val.csv", "--test", "test.csv", "--model", tiny_model,
            "--output", "resumed", *ARGS]
    saved = interrupt_after_checkpoints(monkeypatch, 1)  # Ctrl-C right after the step-3 checkpoint
    assert run_cli(args, cwd=run["dir"]).returncode != 0
    assert len(saved) == 1 and not (run["dir"] / "resumed" / "final").exists()
    monkeypatch.undo()
    assert_ok(run_cli([*args, "--resume"], cwd=run["dir"]))
    assert_same_weights(run["run"] / "final", run["dir"] / "resumed" / "final")

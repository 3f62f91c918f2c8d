"""Calibration end to end: a tiny fine-tune on noisy labels stores its temperature (config.json + manifest),
predict applies it, and the report, the model card and `tuneforge evaluate` show calibration, intervals, worst
errors and the baseline. A run whose validation set has no mistakes stores no temperature, and says why."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
import yaml
from tfi_helpers import FAST, assert_ok, fp_tolerance, make_rows, run_cli, trained_run, write_csv


def _noisy(rows, rng, share=0.2):
    flip = {"positive": "negative", "negative": "positive"}
    return [(t, flip[y] if rng.random() < share else y) for t, y in rows]


# The tests on the noisy run are slow (a second fine-tune, on 800 rows). Temperature fitting, ECE and the bootstrap
# intervals: unit test_calibration.py (test_fit_temperature_recovers_two, test_calibration_summary_temperature_lowers_
# ece_of_overconfident_logits, test_bootstrap_ci_contains_point_and_narrows_with_more_rows); the report and model card
# sections: unit test_report.py::test_write_report_with_ci_calibration_errors_and_baseline, test_model_card.py::
# test_sections_and_content.
NOISY = pytest.mark.slow


@pytest.fixture(scope="module")
def noisy(tmp_path_factory, tiny_model):
    """20% flipped labels everywhere: the model makes mistakes on validation, so a temperature can be fitted."""
    base = tmp_path_factory.mktemp("noisy")
    rng = random.Random(0)
    for name, n, seed in (("train", 400, 1), ("val", 200, 2), ("test", 200, 3)):
        write_csv(base / f"{name}.csv", _noisy(make_rows(n, seed), rng))
    proc = run_cli(["finetune", "--train", "train.csv", "--validation", "val.csv", "--test", "test.csv",
                    "--model", tiny_model, "--output", "run", *FAST], cwd=base)
    assert_ok(proc)
    return {"dir": base, "run": base / "run", "final": base / "run" / "final"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model):
    return trained_run(tmp_path_factory, tiny_model)


@NOISY
def test_temperature_is_stored_in_config_and_manifest(noisy):
    trained = noisy
    final = trained["final"]
    t = json.loads((final / "config.json").read_text())["tuneforge_temperature"]
    assert 0.05 <= t <= 20.0
    manifest = json.loads((final / "tuneforge.json").read_text())
    assert manifest["temperature"] == t
    cal = manifest["calibration"]
    summary = json.loads((trained["run"] / "summary.json").read_text())
    assert summary["calibration"]["temperature"] == t
    assert summary["calibration"]["ece_before"] == cal["ece_before"] and 0 <= cal["ece_after"] <= 1
    assert set(summary["ci"]) == {"accuracy", "macro_f1"}
    lo, hi = summary["ci"]["accuracy"]
    assert lo <= summary["metrics"]["test"]["accuracy"] <= hi
    assert summary["baseline"]["accuracy"] > 0.6 and summary["baseline"]["analyzer"] == "word 1-2-grams"
    assert cal["fitted_on"] == "validation" and abs(t - 1.0) > 0.05
    assert cal["ece_after"] < cal["ece_before"]  # held-out test rows: the validation-fitted T helps
    print(f"\ncalibration on the noisy toy test set: T = {t:.4f}, ECE {cal['ece_before']:.4f} -> {cal['ece_after']:.4f}")


@NOISY
def test_predict_proba_is_softmax_of_logits_over_temperature(noisy):
    trained = noisy
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import tuneforge

    final = str(trained["final"])
    texts = ["the food was great and lovely", "awful broken phone", "the hotel staff was really nice"]
    model = AutoModelForSequenceClassification.from_pretrained(final).eval()
    tokenizer = AutoTokenizer.from_pretrained(final)
    t = model.config.tuneforge_temperature
    with torch.no_grad():
        inputs = tokenizer(texts, padding=True, return_tensors="pt")
        logits = model(**inputs).logits
    expected = torch.softmax(logits / t, -1).numpy()
    got = tuneforge.load(final).predict_proba(texts)
    # The same fp32 math on other paddings: 2 layers over the padded length (32 hidden, 64 FFN), pooler and
    # classifier (32 each), softmax over 2; a probability moves by at most twice its logits' error (/ T).
    tol = fp_tolerance(np.float32, 2 * (inputs["input_ids"].shape[1] + 32 + 64) + 2 * 32 + 2)
    assert np.abs(got - expected).max() <= 2 * tol * logits.abs().max().item() / t
    # not a rounding bound: the stored T changes the probabilities (behavioural)
    assert np.abs(got - torch.softmax(logits, -1).numpy()).max() > 1e-3
    assert (got.argmax(-1) == logits.argmax(-1).numpy()).all()


@NOISY
def test_model_card_and_report_sections(noisy):
    trained = noisy
    card = (trained["final"] / "README.md").read_text(encoding="utf-8")
    _, front, body = card.split("---\n", 2)
    meta = yaml.safe_load(front)
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "text-classification"
    metrics = {m["type"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    summary = json.loads((trained["run"] / "summary.json").read_text())
    # the card rounds metrics to 4 decimals: within half a unit of the 4th
    assert metrics["accuracy"] == pytest.approx(summary["metrics"]["test"]["accuracy"], abs=5e-5)
    for heading in ("## Training data", "## Metrics", "## Calibration", "## Baseline comparison",
                    "## Limitations and bias", "## Training configuration", "## How to use"):
        assert heading in body, heading
    report = trained["run"] / "report"
    md = (report / "report.md").read_text(encoding="utf-8")
    assert "95% CI" in md.splitlines()[2]  # the headline carries the interval
    for section in ("## Calibration", "## Baseline", "## Worst errors", "(reliability.png)"):
        assert section in md, section
    assert (report / "reliability.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@NOISY
def test_evaluate_command_writes_card_calibration_and_baseline(noisy):
    trained = noisy
    base = trained["dir"]
    proc = run_cli(["evaluate", "--model", "run/final", "--data", "test.csv", "--output", "ev",
                    "--baseline-train", "train.csv"], cwd=base)
    assert_ok(proc)
    assert "card:" in proc.stdout
    saved = json.loads((base / "ev" / "metrics.json").read_text())
    t = json.loads((trained["final"] / "config.json").read_text())["tuneforge_temperature"]
    summary = json.loads((trained["run"] / "summary.json").read_text())
    assert saved["calibration"]["temperature"] == t  # exact: evaluate reads T back from config.json
    assert saved["calibration"]["fitted_on"] == "stored"
    # Same weights, same test file, same T: the same ECE as the fine-tune's report, up to each confidence's rounding
    # (perhaps batched differently): 8-token rows, 2 layers (32 hidden, 64 FFN), pooler and classifier (32 each),
    # softmax over 2; a confidence moves by at most twice its logits' error / T. ECE, a weighted mean of
    # |accuracy - confidence| per bin, moves as much.
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    texts = [line.split(",")[0] for line in (base / "test.csv").read_text(encoding="utf-8").splitlines()[1:]]
    model = AutoModelForSequenceClassification.from_pretrained(trained["final"]).eval()
    with torch.no_grad():
        inputs = AutoTokenizer.from_pretrained(trained["final"])(texts, padding=True, return_tensors="pt")
        logits = model(**inputs).logits
    tol = fp_tolerance(np.float32, 2 * (8 + 32 + 64) + 2 * 32 + 2)
    assert saved["calibration"]["ece_after"] == pytest.approx(summary["calibration"]["ece_after"],
                                                              abs=2 * tol * logits.abs().max().item() / t)
    assert saved["baseline"]["accuracy"] == pytest.approx(summary["baseline"]["accuracy"])
    assert set(saved["ci"]) == {"accuracy", "macro_f1"}
    md = (base / "ev" / "report.md").read_text(encoding="utf-8")
    assert "stored in the model" in md and "## Worst errors" in md and "## Baseline" in md
    card = (base / "ev" / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\n") and "test.csv" in card


def test_no_temperature_when_validation_has_no_mistakes(trained):
    """The toy task is learned perfectly: the NLL keeps falling as T → 0, so no T is stored and the report says so."""
    summary = json.loads((trained["run"] / "summary.json").read_text())
    assert summary["metrics"]["validation"]["accuracy"] == 1.0
    assert "tuneforge_temperature" not in json.loads((trained["final"] / "config.json").read_text())
    manifest = json.loads((trained["final"] / "tuneforge.json").read_text())
    assert manifest["temperature"] is None and manifest["calibration"]["fitted_on"] == "none"
    assert summary["calibration"]["temperature"] == 1.0 and "no mistakes" in summary["calibration"]["note"]
    md = (trained["run"] / "report" / "report.md").read_text(encoding="utf-8")
    assert "No temperature is stored in the model (T = 1): the validation set has no mistakes" in md
    card = (trained["final"] / "README.md").read_text(encoding="utf-8")  # the model card says so, too
    assert "No temperature is stored in the model (T = 1): the validation set has no mistakes" in card

"""The evaluation report: metrics.json, report.md, report.html and PNG plots."""
from __future__ import annotations

import json

import torch

from tuneforge.evaluate.metrics import Counts, compute_metrics
from tuneforge.evaluate.report import write_report

PNG = b"\x89PNG\r\n\x1a\n"
NAMES = ("negative", "neutral", "positive")
HISTORY = [{"step": 10, "loss": 1.1, "lr": 1e-4}, {"step": 20, "loss": 0.8},
           {"step": 20, "split": "validation", "loss": 0.9, "accuracy": 0.5},
           {"step": 30, "loss": 0.5}, {"step": 30, "split": "validation", "loss": 0.7, "accuracy": 0.7}]


def _metrics(multi=False):
    g = torch.Generator().manual_seed(0)
    counts = Counts(3, multi)
    labels = (torch.rand(50, 3, generator=g) > 0.5).float() if multi else torch.randint(0, 3, (50,), generator=g)
    counts.add(torch.randn(50, 3, generator=g), labels, torch.tensor(30.0))
    return compute_metrics(counts, NAMES)


def test_write_report_single_label(tmp_path):
    m = _metrics()
    out = tmp_path / "report"
    html_path = write_report(out, m, NAMES, HISTORY, title="My run", notes=["a <note> & more"])
    assert html_path == out / "report.html"
    for name in ("metrics.json", "report.md", "report.html", "loss_curve.png", "confusion_matrix.png"):
        assert (out / name).is_file(), name
    for png in ("loss_curve.png", "confusion_matrix.png"):
        data = (out / png).read_bytes()
        assert data[:8] == PNG and len(data) > 1000
    assert json.loads((out / "metrics.json").read_text(encoding="utf-8")) == json.loads(json.dumps(m))

    md = (out / "report.md").read_text(encoding="utf-8")
    assert md.startswith("# My run")
    assert f"| accuracy | {m['accuracy']:.4f} |" in md
    assert f"| macro_f1 | {m['macro_f1']:.4f} |" in md
    assert "| samples | 50 |" in md
    for name in NAMES:
        c = m["per_class"][name]
        assert f"| {name} | {c['precision']:.4f} | {c['recall']:.4f} | {c['f1']:.4f} | {c['support']} |" in md
    assert "(loss_curve.png)" in md and "(confusion_matrix.png)" in md
    assert "- a <note> & more" in md

    page = (out / "report.html").read_text(encoding="utf-8")
    assert "<title>My run</title>" in page
    assert f"accuracy {m['accuracy']:.2%}" in page
    assert all(f"<td>{n}</td>" in page for n in NAMES)
    assert "a &lt;note&gt; &amp; more" in page and "<note>" not in page
    assert "src='confusion_matrix.png'" in page


def test_write_report_multi_label_and_no_history(tmp_path):
    m = _metrics(multi=True)
    out = tmp_path / "r"
    write_report(out, m, NAMES, history=[])
    assert (out / "metrics.json").is_file() and (out / "report.md").is_file() and (out / "report.html").is_file()
    assert not (out / "loss_curve.png").exists()  # nothing to plot
    assert not (out / "confusion_matrix.png").exists()  # multi-label has no confusion matrix
    md = (out / "report.md").read_text(encoding="utf-8")
    assert f"| micro_f1 | {m['micro_f1']:.4f} |" in md
    assert "## Notes" not in md and "png" not in md


def test_write_report_overwrites(tmp_path):
    write_report(tmp_path, _metrics(), NAMES, HISTORY, title="first")
    write_report(tmp_path, _metrics(), NAMES, HISTORY, title="second")
    assert (tmp_path / "report.md").read_text(encoding="utf-8").startswith("# second")
    assert not list(tmp_path.glob(".*tmp*"))  # no temp files left behind


def _sections():
    import numpy as np

    from tuneforge.evaluate.calibration import (
        bootstrap_ci,
        calibration_summary,
        fit_temperature,
        softmax,
        worst_errors,
    )

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 3)) * 4
    true = rng.integers(0, 3, 50)
    pred = logits.argmax(-1)
    t = fit_temperature(logits, true)
    cal = {**calibration_summary(logits, true, t), "fitted_on": "validation"}
    texts = [f"row {i} <script>alert('x')</script> | pipe" for i in range(50)]
    conf = softmax(logits, t).max(-1)
    errors = worst_errors(true, pred, conf, texts, NAMES, k=5)
    baseline = {"accuracy": 0.31, "macro_f1": 0.3, "fit_seconds": 0.2, "analyzer": "word 1-2-grams"}
    return bootstrap_ci(true, pred, NAMES, 200, 0), cal, errors, baseline


def test_write_report_with_ci_calibration_errors_and_baseline(tmp_path):
    m = _metrics()
    ci, cal, errors, baseline = _sections()
    baseline = {**baseline, "accuracy": m["accuracy"] - 0.005, "macro_f1": m["macro_f1"] - 0.01}
    write_report(tmp_path, m, NAMES, HISTORY, title="Full", ci=ci, calibration=cal, errors=errors,
                 baseline=baseline, train_seconds=300.0, split="the test set")
    assert (tmp_path / "reliability.png").read_bytes()[:8] == PNG
    saved = json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))
    assert saved["accuracy"] == m["accuracy"] and saved["ci"] == ci
    assert saved["calibration"]["temperature"] == cal["temperature"]
    assert saved["calibration"]["ece_after"] == cal["ece_after"] and saved["baseline"]["accuracy"] == baseline["accuracy"]

    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    lo, hi = ci["accuracy"]
    assert md.splitlines()[2].startswith(f"**accuracy {m['accuracy']:.2%} (95% CI {lo:.2%}–{hi:.2%})")  # headline first
    assert f"| accuracy | {m['accuracy']:.4f} | {lo:.4f}–{hi:.4f} |" in md
    assert "## Calibration" in md and "(reliability.png)" in md
    assert cal["temperature"] > 19.9 and "edge of its search range" in md  # random logits: T pinned at its bound
    assert f"{cal['ece_before']:.4f} at T = 1 and {cal['ece_after']:.4f} at T = {cal['temperature']:.3f}" in md
    assert "## Baseline" in md and "TF-IDF + logistic regression (word 1-2-grams)" in md and "5.0 min" in md
    assert "nearly as good here" in md and "buys little" in md  # a 0.5-point gap is said plainly
    assert "## Worst errors" in md and f"| {errors[0]['row']} |" in md
    assert "\\| pipe" in md and "<script>" not in md  # table cells stay one cell, no raw HTML

    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<script>" not in page and "&lt;script&gt;" in page  # user texts are escaped
    assert "src='reliability.png'" in page and "<h2>Baseline</h2>" in page and "<h2>Worst errors</h2>" in page
    assert page.index("class=\"big\"") < page.index("<h2>Per class</h2>")  # the headline reads first


def test_report_states_the_gain_when_the_transformer_wins(tmp_path):
    m = _metrics()
    baseline = {"accuracy": m["accuracy"] - 0.12, "macro_f1": m["macro_f1"] - 0.1, "fit_seconds": 0.2,
                "analyzer": "char 1-3-grams"}
    write_report(tmp_path, m, NAMES, [], baseline=baseline)
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "The transformer gains 12.0 accuracy points over the TF-IDF baseline" in md
    assert "nearly as good" not in md
    skipped = tmp_path / "skipped"
    write_report(skipped, m, NAMES, [], baseline={"skipped": True, "reason": "multi-label task"}, errors=[])
    md = (skipped / "report.md").read_text(encoding="utf-8")
    assert "No baseline: multi-label task" in md and "No errors on this set." in md
    assert not (skipped / "reliability.png").exists()

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

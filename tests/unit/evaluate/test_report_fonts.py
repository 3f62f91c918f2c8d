"""Chinese class names in the evaluation report and the data report: no empty boxes in the PNGs (the CJK fallback
font of fonts.py) and CJK fonts in the pages' CSS."""
from __future__ import annotations

import warnings

from tuneforge.evaluate.data_report import plot_label_distribution
from tuneforge.evaluate.fonts import CSS_FONT_STACK
from tuneforge.evaluate.report import write_report

NAMES = ("正面", "负面", "中性")
METRICS = {"accuracy": 0.6, "macro_f1": 0.55, "samples": 10, "confusion_matrix": [[2, 1, 0], [1, 2, 0], [0, 2, 2]],
           "per_class": {n: {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 3} for n in NAMES}}


def _missing_glyphs(draw) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        draw()
    return [str(w.message) for w in caught if "missing from font" in str(w.message)]


def test_evaluation_report_with_chinese_labels(tmp_path):
    assert _missing_glyphs(lambda: write_report(tmp_path, METRICS, NAMES, [{"step": 1, "loss": 1.0}])) == []
    assert (tmp_path / "confusion_matrix.png").is_file()
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert CSS_FONT_STACK in page and "<td>正面</td>" in page


def test_data_report_label_plot_with_chinese_labels(tmp_path):
    counts = {"train": {"正面": 30, "负面": 20}, "test": {"正面": 5, "负面": 4}}
    assert _missing_glyphs(lambda: plot_label_distribution(counts, tmp_path / "labels.png")) == []

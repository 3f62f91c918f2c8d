"""Report plots with Chinese labels: the packaged CJK font is a glyph-by-glyph fallback (no empty boxes), Latin
text keeps the default font, and the HTML pages name CJK fonts in their CSS."""
from __future__ import annotations

import warnings

import matplotlib
import pytest

from tuneforge.evaluate import fonts
from tuneforge.evaluate.plots import plot_confusion, plot_loss_curve, plot_reliability
from tuneforge.evaluate.report_html import STYLE

PNG = b"\x89PNG\r\n\x1a\n"
ZH_NAMES = ("正面", "负面", "中性 neutral")
MATRIX = [[5, 1, 0], [2, 6, 1], [0, 1, 4]]


def _missing_glyphs(draw) -> list[str]:
    """Run `draw` and return matplotlib's "Glyph ... missing from font(s)" warnings (the empty boxes)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        draw()
    return [str(w.message) for w in caught if "missing from font" in str(w.message)]


def test_packaged_cjk_font_is_found_and_registered():
    path = fonts.packaged_font()
    assert path is not None and path.is_file() and path.stat().st_size > 1_000_000
    assert fonts.cjk_families() == (fonts.PACKAGED_FAMILY,)
    from matplotlib import font_manager

    found = font_manager.findfont(font_manager.FontProperties(family=[fonts.PACKAGED_FAMILY]),
                                  fallback_to_default=False)
    assert str(found) == str(path)


def test_confusion_matrix_with_chinese_labels_has_no_empty_boxes(tmp_path):
    out = tmp_path / "confusion_matrix.png"
    assert _missing_glyphs(lambda: plot_confusion(MATRIX, ZH_NAMES, out)) == []
    assert out.read_bytes()[:8] == PNG


def test_without_the_fallback_chinese_labels_are_empty_boxes(tmp_path, monkeypatch):
    """The control for the test above: the check does see missing glyphs when no CJK font is in the chain."""
    monkeypatch.setattr(fonts, "cjk_families", lambda: ())
    missing = _missing_glyphs(lambda: plot_confusion(MATRIX, ZH_NAMES, tmp_path / "cm.png"))
    assert any("CJK UNIFIED IDEOGRAPH" in m for m in missing), missing


def test_japanese_and_korean_labels_render_too(tmp_path):
    names = ("ポジティブ", "부정", "Ελληνικά")
    assert _missing_glyphs(lambda: plot_confusion([[1, 0, 0], [0, 1, 0], [0, 0, 1]], names,
                                                  tmp_path / "cm.png")) == []


def test_latin_text_keeps_the_default_font_and_settings_are_restored(tmp_path):
    before = list(matplotlib.rcParams["font.family"])
    family = fonts.font_family()
    assert family[:len(before)] == before and family[-1] == fonts.PACKAGED_FAMILY
    plot_confusion(MATRIX, ("positive", "negative", "neutral"), tmp_path / "cm.png")
    plot_loss_curve([{"step": 1, "loss": 1.0}, {"step": 2, "loss": 0.5}], tmp_path / "loss.png")
    assert list(matplotlib.rcParams["font.family"]) == before  # the caller's matplotlib state is untouched
    from matplotlib import font_manager

    latin = font_manager.fontManager._find_fonts_by_props(font_manager.FontProperties(family=family))
    assert "DejaVuSans" in str(latin[0]) and str(latin[-1]) == str(fonts.packaged_font())


def test_reliability_plot_still_draws(tmp_path):
    rel = {"confidence": [0.55, 0.95], "accuracy": [0.5, 0.9], "count": [4, 6]}
    cal = {"temperature": 1.3, "reliability_before": rel, "reliability_after": rel, "ece_before": 0.1,
           "ece_after": 0.05}
    assert plot_reliability(cal, tmp_path / "rel.png").read_bytes()[:8] == PNG


@pytest.mark.parametrize("names, expected", [(["DejaVu Sans", "WenQuanYi Micro Hei", "SimHei"],
                                              ("WenQuanYi Micro Hei",)),
                                             (["DejaVu Sans"], ())])
def test_without_the_package_a_system_cjk_font_is_used_if_any(monkeypatch, names, expected):
    from matplotlib import font_manager

    monkeypatch.setattr(fonts, "packaged_font", lambda: None)
    monkeypatch.setattr(font_manager.fontManager, "ttflist", [font_manager.FontEntry(name=n) for n in names])
    assert fonts.cjk_families.__wrapped__() == expected


def test_html_font_stack_names_cjk_fonts_after_the_ui_font():
    css = STYLE.split("font-family:", 1)[1].split(";", 1)[0]
    stack = [f.strip('"') for f in css.split(",")]
    assert stack[0] == "system-ui" and stack[-1] == "sans-serif"
    for cjk in ("Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", "WenQuanYi Micro Hei"):
        assert cjk in stack and stack.index(cjk) > stack.index("Arial")

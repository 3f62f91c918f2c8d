"""Fonts for the reports: the CJK fallback font for the matplotlib PNGs (registered at plot time) and the CSS font
stack of the HTML pages, so Chinese, Japanese and Korean labels and texts render instead of empty boxes."""
from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

# pip package `noto-cjk-sans-otc` (SIL OFL 1.1): Noto Sans CJK Regular as one collection (SC, TC, HK, JP, KR faces;
# 15.5 MB wheel, 19.5 MB installed). Matplotlib's DejaVu Sans has no CJK glyphs at all, and a fresh machine often
# has no CJK system font, so the font travels as a dependency.
PACKAGE = "noto_cjk_sans_otc"
# The Simplified Chinese face: every face holds the same 27,000 Han characters plus kana and Hangul; they differ in
# regional glyph forms, and SC places Chinese punctuation (，。) low-left as Chinese readers expect.
PACKAGED_FAMILY = "Noto Sans CJK SC"
# Used when the package is missing (a trimmed install) but the system has one of these; first found wins.
SYSTEM_FAMILIES = ("Noto Sans CJK SC", "Source Han Sans SC", "Noto Sans SC", "WenQuanYi Micro Hei",
                   "WenQuanYi Zen Hei", "Microsoft YaHei", "PingFang SC", "Hiragino Sans GB", "SimHei",
                   "Noto Sans CJK JP", "Source Han Sans", "Droid Sans Fallback")
# HTML: the browser falls back glyph by glyph along this list, so Latin text keeps the system UI font and CJK
# text takes the first CJK font the reader's system has (macOS, Windows, Linux, then the generic family).
CSS_FONT_STACK = ('system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Noto Sans",'
                  '"Noto Sans CJK SC","Source Han Sans SC","PingFang SC","Hiragino Sans GB","Microsoft YaHei",'
                  '"WenQuanYi Micro Hei",sans-serif')


def packaged_font() -> Path | None:
    """The CJK font file that the `noto-cjk-sans-otc` package ships, or None when it is not installed."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".ttc", ".otf", ".ttf"))
        if files:
            return files[0]
    return None


@functools.cache
def cjk_families() -> tuple[str, ...]:
    """Register the packaged font with matplotlib (once per process) and return the CJK family to fall back on:
    empty when neither the package nor a known system CJK font is there."""
    from matplotlib import font_manager

    path = packaged_font()
    if path is not None:
        font_manager.fontManager.addfont(str(path))
    known = {entry.name for entry in font_manager.fontManager.ttflist}
    # A matplotlib that reads only the first face of a collection registers it as "Noto Sans CJK JP": still found.
    return tuple(name for name in (PACKAGED_FAMILY, *SYSTEM_FAMILIES) if name in known)[:1]


def font_family() -> list[str]:
    """matplotlib's font.family with the CJK family appended. Matplotlib falls back glyph by glyph only along
    font.family (font.sans-serif resolves to one font), so Latin text keeps the default font (DejaVu Sans) and
    only glyphs it lacks come from the CJK font."""
    import matplotlib

    current = matplotlib.rcParams["font.family"]
    current = [current] if isinstance(current, str) else list(current)
    return current + [name for name in cjk_families() if name not in current]


def with_cjk_fonts(plot):
    """Decorator for a function that draws and saves a figure: it runs with the CJK fallback in font.family, and
    the caller's matplotlib settings are restored afterwards."""

    @functools.wraps(plot)
    def run(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context({"font.family": font_family()}):
            return plot(*args, **kwargs)

    return run

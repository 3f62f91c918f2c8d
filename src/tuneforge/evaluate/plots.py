"""The PNG plots of the evaluation report: loss curve, confusion matrix and reliability diagram (accuracy against
confidence, before and after temperature). Each draws with the CJK fallback font (fonts.py), so Chinese, Japanese
or Korean class names render instead of empty boxes."""
from __future__ import annotations

from pathlib import Path

from tuneforge.evaluate.fonts import with_cjk_fonts


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, out: Path) -> Path:
    """Lay the figure out, write it to `out` and close it (an open figure keeps its memory until the process ends)."""
    fig.tight_layout()
    fig.savefig(out)
    _pyplot().close(fig)
    return out


@with_cjk_fonts
def plot_loss_curve(history: list[dict], out: Path) -> Path | None:
    """Training loss per optimizer step, with the validation loss points; None when the history has no loss."""
    train = [(r["step"], r["loss"]) for r in history if "split" not in r and "loss" in r]
    val = [(r["step"], r["loss"]) for r in history if r.get("split") == "validation" and "loss" in r]
    if not train and not val:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=110)
    if train:
        ax.plot(*zip(*train), label="train loss", lw=1.2)
    if val:
        ax.plot(*zip(*val), "o-", label="validation loss", lw=1.5)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, out)


@with_cjk_fonts
def plot_confusion(matrix: list[list[int]], names: tuple[str, ...], out: Path) -> Path:
    """Counts of true (rows) against predicted (columns) labels, class names on both axes."""
    import numpy as np
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = _pyplot()
    size = max(4.0, 0.6 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size, size), dpi=110)
    ConfusionMatrixDisplay(np.array(matrix), display_labels=list(names)).plot(ax=ax, cmap="Blues", colorbar=False,
                                                                             xticks_rotation=45)
    ax.set_title("Confusion matrix", fontsize=10)
    return save_figure(fig, out)


@with_cjk_fonts
def plot_reliability(calibration: dict, out: Path) -> Path:
    """Per-bin accuracy vs mean confidence at T = 1 and at the fitted T, on one plot, with the diagonal; marker
    size shows how many rows each bin holds."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4.2), dpi=110)
    ax.plot([0, 1], [0, 1], "--", color="#888", lw=1, label="perfectly calibrated")
    styles = {"before": ("o-", "#d62728", "T = 1"),
              "after": ("s-", "#1f77b4", f"T = {calibration['temperature']:.2f}")}
    if calibration.get("fitted_on") == "none":
        styles.pop("after")  # no stored temperature: the "after" curve would repeat the first one
    for key, (style, color, label) in styles.items():
        rel = calibration[f"reliability_{key}"]
        points = [(c, a, n) for c, a, n in zip(rel["confidence"], rel["accuracy"], rel["count"]) if c is not None]
        if points:
            conf, acc, count = zip(*points)
            ax.plot(conf, acc, style, color=color, lw=1.5, ms=3,
                    label=f"{label} (ECE {calibration[f'ece_{key}']:.3f})")
            # Marker area follows the bin's share of rows: a bin of 2 rows should not look like a trend.
            ax.scatter(conf, acc, s=[8 + 250 * n / max(sum(count), 1) for n in count], color=color, alpha=0.35)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("confidence (top-label probability)")
    ax.set_ylabel("accuracy")
    ax.set_title("Reliability diagram", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return save_figure(fig, out)

"""The reliability diagram of the evaluation report: accuracy against confidence, before and after temperature."""
from __future__ import annotations

from pathlib import Path


def plot_reliability(calibration: dict, out: Path) -> Path:
    """Per-bin accuracy vs mean confidence at T = 1 and at the fitted T, on one plot, with the diagonal; marker
    size shows how many rows each bin holds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out

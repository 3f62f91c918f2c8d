"""The evaluation report: metrics.json, report.md and report.html with a loss curve and a confusion matrix."""
from __future__ import annotations

import html
import json
from pathlib import Path

from tuneforge.model.artifact import atomic_write_text

HEADLINE = ("accuracy", "macro_f1", "micro_f1", "macro_precision", "macro_recall", "loss")


def plot_loss_curve(history: list[dict], out: Path) -> Path | None:
    train = [(r["step"], r["loss"]) for r in history if "split" not in r and "loss" in r]
    val = [(r["step"], r["loss"]) for r in history if r.get("split") == "validation" and "loss" in r]
    if not train and not val:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=110)
    if train:
        ax.plot(*zip(*train), label="train loss", lw=1.2)
    if val:
        ax.plot(*zip(*val), "o-", label="validation loss", lw=1.5)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_confusion(matrix: list[list[int]], names: tuple[str, ...], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from sklearn.metrics import ConfusionMatrixDisplay

    size = max(4.0, 0.6 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size, size), dpi=110)
    ConfusionMatrixDisplay(np.array(matrix), display_labels=list(names)).plot(ax=ax, cmap="Blues", colorbar=False,
                                                                             xticks_rotation=45)
    ax.set_title("Confusion matrix", fontsize=10)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def _fmt(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def _markdown(title: str, metrics: dict, names, plots: dict[str, str], notes: list[str]) -> str:
    lines = [f"# {title}", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(metrics[k])} |" for k in HEADLINE if k in metrics]
    lines += [f"| samples | {metrics.get('samples')} |", "", "## Per class", "",
              "| label | precision | recall | f1 | support |", "|---|---|---|---|---|"]
    for name in names:
        c = metrics["per_class"][name]
        lines.append(f"| {name} | {c['precision']:.4f} | {c['recall']:.4f} | {c['f1']:.4f} | {c['support']} |")
    for caption, file in plots.items():
        lines += ["", f"## {caption}", "", f"![{caption}]({file})"]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def _html(title: str, metrics: dict, names, plots: dict[str, str], notes: list[str]) -> str:
    e = html.escape
    rows = "".join(f"<tr><td>{e(k)}</td><td>{_fmt(metrics[k])}</td></tr>" for k in HEADLINE if k in metrics)
    per = "".join(
        f"<tr><td>{e(n)}</td><td>{c['precision']:.4f}</td><td>{c['recall']:.4f}</td><td>{c['f1']:.4f}</td><td>{c['support']}</td></tr>"
        for n in names for c in [metrics["per_class"][n]])
    imgs = "".join(f"<figure><img src='{e(f)}' alt='{e(c)}'><figcaption>{e(c)}</figcaption></figure>" for c, f in plots.items())
    note = "".join(f"<li>{e(n)}</li>" for n in notes)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{e(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:900px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}
td:first-child{{text-align:left}}.big{{font-size:2em;font-weight:bold}}figure{{display:inline-block;margin:0 1em}}</style></head>
<body><h1>{e(title)}</h1><p class="big">accuracy {metrics['accuracy']:.2%} · macro F1 {metrics['macro_f1']:.3f}</p>
<table><tr><th>metric</th><th>value</th></tr>{rows}</table>
<h2>Per class</h2><table><tr><th>label</th><th>precision</th><th>recall</th><th>f1</th><th>support</th></tr>{per}</table>
{imgs}{f'<h2>Notes</h2><ul>{note}</ul>' if note else ''}</body></html>
"""


def write_report(out_dir: Path, metrics: dict, names: tuple[str, ...], history: list[dict],
                 title: str = "TuneForge evaluation", notes: list[str] | None = None) -> Path:
    """Write metrics.json, report.md, report.html and the PNGs; return the HTML path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2, ensure_ascii=False))
    plots: dict[str, str] = {}
    if plot_loss_curve(history, out_dir / "loss_curve.png"):
        plots["Loss curve"] = "loss_curve.png"
    if "confusion_matrix" in metrics:
        plot_confusion(metrics["confusion_matrix"], names, out_dir / "confusion_matrix.png")
        plots["Confusion matrix"] = "confusion_matrix.png"
    notes = notes or []
    atomic_write_text(out_dir / "report.md", _markdown(title, metrics, names, plots, notes))
    atomic_write_text(out_dir / "report.html", _html(title, metrics, names, plots, notes))
    return out_dir / "report.html"

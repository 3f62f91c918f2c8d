"""The pretraining report: report.md and report.html with the loss and perplexity curves and throughput, and for
a causal LM a few greedy samples (a held-out text's start, what the model wrote after it, what the text says)."""
from __future__ import annotations

import html
import json
from pathlib import Path

from tuneforge.evaluate.fonts import CSS_FONT_STACK
from tuneforge.evaluate.plots import save_figure
from tuneforge.evaluate.report import plot_loss_curve
from tuneforge.model.artifact import atomic_write_text
from tuneforge.model.manifest import RunSummary


LOSS_NAMES = {"mlm": "MLM", "clm": "next-token"}


def plot_perplexity(history: list[dict], out: Path, kind: str = "MLM") -> Path | None:
    points = [(r["step"], r["perplexity"]) for r in history if r.get("split") == "validation" and "perplexity" in r]
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=110)
    ax.plot(*zip(*points), "o-", lw=1.5, color="tab:purple")
    ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(f"held-out {kind} perplexity (log)")
    ax.grid(alpha=0.3, which="both")
    return save_figure(fig, out)


def _rows(summary: RunSummary) -> list[tuple[str, str]]:
    m = summary.metrics
    first = summary.initial_metrics or {}
    rows = [("held-out perplexity", f"{m['perplexity']:.2f}" + (f" (start {first['perplexity']:.1f})" if first else "")),
            (f"held-out {LOSS_NAMES.get(summary.task, summary.task)} loss", f"{m['loss']:.4f}")]
    rows += [(label, f"{m[key]:.2%}") for key, label in (("masked_accuracy", "masked-token accuracy"),
                                                          ("accuracy", "next-token accuracy")) if key in m]
    rows += [("optimizer steps", str(summary.steps)), ("training tokens", f"{summary.tokens:,}"),
            ("tokens/s", f"{summary.tokens_per_s:,.0f}"), ("stop reason", str(summary.stop_reason)),
            ("train time", f"{summary.train_seconds / 60:.1f} min")]
    if summary.mfu is not None:
        rows.append(("MFU (executed training FLOPs per token × tokens/s ÷ measured matmul peak)",
                     f"{summary.mfu:.1%} of {summary.peak_flops / 1e9:.0f} GFLOP/s"))
    return rows


def _cell(text: str) -> str:
    """A text as one Markdown table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _samples_md(samples: list[dict]) -> list[str]:
    cell = _cell
    return ["", "## Samples (greedy, held-out texts)", "", "| start of the text | the model wrote | the text went on |",
            "|---|---|---|"] + [f"| {cell(s['prompt'])} | {cell(s['generated'])} | {cell(s['reference'])} |"
                                for s in samples]


def _samples_html(samples: list[dict]) -> str:
    if not samples:
        return ""
    e = html.escape
    rows = "".join(f"<tr><td>{e(s['prompt'])}</td><td><b>{e(s['generated'])}</b></td><td>{e(s['reference'])}</td></tr>"
                   for s in samples)
    return ("<h2>Samples (greedy, held-out texts)</h2><table><tr><th>start of the text</th><th>the model wrote</th>"
            f"<th>the text went on</th></tr>{rows}</table>")


def write_pretrain_report(out_dir: Path, summary: RunSummary, history: list[dict], title: str,
                          samples: list[dict] | None = None) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "metrics.json", json.dumps(summary.metrics, indent=2))
    plots = {}
    if plot_loss_curve(history, out_dir / "loss_curve.png"):
        plots["Loss curve"] = "loss_curve.png"
    if plot_perplexity(history, out_dir / "perplexity.png", LOSS_NAMES.get(summary.task, summary.task)):
        plots["Held-out perplexity"] = "perplexity.png"
    rows = _rows(summary)
    md = [f"# {title}", "", "| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    md += [line for c, f in plots.items() for line in ("", f"## {c}", "", f"![{c}]({f})")]
    md += _samples_md(samples) if samples else []
    atomic_write_text(out_dir / "report.md", "\n".join(md) + "\n")
    e = html.escape
    table = "".join(f"<tr><td>{e(k)}</td><td>{e(v)}</td></tr>" for k, v in rows)
    imgs = "".join(f"<figure><img src='{e(f)}' alt='{e(c)}'><figcaption>{e(c)}</figcaption></figure>" for c, f in plots.items())
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{e(title)}</title>
<style>body{{font-family:{CSS_FONT_STACK};max-width:900px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td{{border:1px solid #ccc;padding:4px 10px}}
.big{{font-size:2em;font-weight:bold}}figure{{display:inline-block;margin:0 1em}}</style></head>
<body><h1>{e(title)}</h1><p class="big">perplexity {summary.metrics['perplexity']:.2f}</p>
<table>{table}</table>{imgs}{_samples_html(samples or [])}</body></html>
"""
    atomic_write_text(out_dir / "report.html", page)
    return out_dir / "report.html"

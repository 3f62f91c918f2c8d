"""The SFT report: metrics.json, report.md and report.html with the headline scores, held-out loss and perplexity
per split, the training run, the loss curve, and prompts, references and generations side by side.

Every string from data (prompts, answers) goes through html.escape in the HTML and has its pipes escaped in the
Markdown: they are user data.
"""
from __future__ import annotations

import html
import json
from pathlib import Path

from tuneforge.evaluate.report import plot_loss_curve
from tuneforge.evaluate.report_html import STYLE
from tuneforge.model.artifact import atomic_write_text

CELL_CHARS = 400  # longer prompts and answers are cut in the table (metrics.json keeps them whole)


def headline(metrics: dict) -> str:
    """'label accuracy 91.0% · exact match 90.0% · ROUGE-L 0.912 · perplexity 1.84' (what was measured)."""
    parts = []
    if "accuracy" in metrics:
        parts.append(f"label accuracy {metrics['accuracy']:.1%}")
    if "exact_match" in metrics:
        parts += [f"exact match {metrics['exact_match']:.1%}", f"ROUGE-L {metrics['rouge_l']:.3f}"]
    parts.append(f"perplexity {metrics['perplexity']:.2f}")
    return " · ".join(parts)


def _cut(text: str) -> str:
    return text if len(text) <= CELL_CHARS else text[:CELL_CHARS] + " …"


def _split_rows(all_metrics: dict) -> list[list[str]]:
    rows = []
    for split, m in all_metrics.items():
        gen = m.get("generated", 0)
        rows.append([split, f"{m['loss']:.4f}", f"{m['perplexity']:.3f}", f"{m['tokens']:,}",
                     f"{m['exact_match']:.1%}" if gen else "", f"{m['accuracy']:.1%}" if "accuracy" in m else "",
                     f"{m['rouge_l']:.3f}" if gen else "", str(gen or "")])
    return rows


SPLIT_HEADER = ["split", "loss", "perplexity", "answer tokens", "exact match", "label accuracy", "ROUGE-L", "generated"]
ANSWER_HEADER = ["row", "prompt", "reference", "generation", "exact", "ROUGE-L"]


def _answer_cells(r: dict) -> list[str]:
    prompt = _cut(r["prompt"]) + (f" (after {r['earlier_turns']} earlier messages)" if r["earlier_turns"] else "")
    return [str(r["row"]), prompt, _cut(r["reference"]), _cut(r["generation"]), "✓" if r["exact_match"] else "✗",
            f"{r['rouge_l']:.3f}"]


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    def cell(x: str) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    return [f"| {' | '.join(header)} |", "|" + "---|" * len(header)] + \
        [f"| {' | '.join(cell(c) for c in r)} |" for r in rows]


def _html_table(header: list[str], rows: list[list[str]], text_columns: set[int] = frozenset()) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td class='text'>{e(c)}</td>" if k in text_columns else f"<td>{e(c)}</td>"
                                    for k, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def write_sft_report(out_dir: Path, title: str, metrics: dict, split: str, answers: list[dict],
                     facts: list[tuple[str, str]], history: list[dict], notes: list[str],
                     generation: dict | None = None) -> Path:
    """`metrics`: split → {loss, perplexity, tokens, [exact_match, rouge_l, accuracy, generated]}; `answers`: the
    report split's generated rows; `facts`: (label, value) lines about the run; `generation`: the decoding settings
    (kept in metrics.json so the answers can be reproduced). Returns report.html."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {"metrics": metrics, "split": split, "generation": generation or {}, "answers": answers}
    atomic_write_text(out_dir / "metrics.json", json.dumps(record, indent=2, ensure_ascii=False))
    curve = plot_loss_curve(history, out_dir / "loss_curve.png")
    big = headline(metrics[split])
    split_rows, answer_rows = _split_rows(metrics), [_answer_cells(r) for r in answers]
    md = [f"# {title}", "", f"**{big}** (the {split} set)", ""] + _md_table(SPLIT_HEADER, split_rows)
    md += ["", "## Training", ""] + _md_table(["", ""], [list(f) for f in facts])
    md += ["", "## Loss curve", "", "![Loss curve](loss_curve.png)"] if curve else []
    if answers:
        md += ["", f"## Answers on the {split} set", "", f"{len(answers)} prompts, greedy decoding."]
        md += [""] + _md_table(ANSWER_HEADER, answer_rows)
    md += ["", "## Notes", ""] + [f"- {n}" for n in notes] if notes else []
    atomic_write_text(out_dir / "report.md", "\n".join(md) + "\n")
    e = html.escape
    page = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>{STYLE}</style>",
            f"</head><body><h1>{e(title)}</h1><p class='big'>{e(big)}</p><p class='sub'>the {e(split)} set</p>",
            _html_table(SPLIT_HEADER, split_rows), "<h2>Training</h2>", _html_table(["", ""], [list(f) for f in facts])]
    if curve:
        page.append("<figure><img src='loss_curve.png' alt='Loss curve'><figcaption>Loss curve</figcaption></figure>")
    if answers:
        page += [f"<h2>Answers on the {e(split)} set</h2><p>{len(answers)} prompts, greedy decoding.</p>",
                 _html_table(ANSWER_HEADER, answer_rows, {1, 2, 3})]
    if notes:
        page.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in notes) + "</ul>")
    atomic_write_text(out_dir / "report.html", "".join(page) + "</body></html>\n")
    return out_dir / "report.html"

"""The data report of `tuneforge data check`: data_report.md, data_report.html, data_summary.json and PNG plots.

Both documents are rendered from one list of sections (paragraphs, tables, images), so they always agree."""
from __future__ import annotations

import html
import json
import unicodedata
from pathlib import Path

from tuneforge.evaluate.fonts import CSS_FONT_STACK, with_cjk_fonts
from tuneforge.evaluate.plots import _pyplot, save_figure
from tuneforge.model.artifact import atomic_write_text

MAX_PLOTTED_LABELS = 40
TEXT_CHARS = 160  # example texts are cut here in the tables (data_summary.json keeps them whole)
IMBALANCE_WARN, TRUNCATION_WARN, SCRIPT_WARN = 3.0, 0.01, 0.95

Block = tuple  # ("p", text) | ("table", header, rows) | ("img", caption, file)


@with_cjk_fonts
def plot_label_distribution(counts: dict[str, dict[str, int]], out: Path) -> Path:
    """Grouped bars: each label's share of its split, one bar colour per split (n in the legend)."""
    import numpy as np

    plt = _pyplot()
    labels = list(dict.fromkeys(k for c in counts.values() for k in c))[:MAX_PLOTTED_LABELS]
    x, width = np.arange(len(labels)), 0.8 / max(1, len(counts))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(labels) * len(counts) + 2), 3.8), dpi=110)
    for k, (split, c) in enumerate(counts.items()):
        total = sum(c.values()) or 1
        ax.bar(x + k * width, [100 * c.get(lab, 0) / total for lab in labels], width, label=f"{split} (n={total:,})")
    ax.set_xticks(x + width * (len(counts) - 1) / 2, labels, rotation=45 if len(labels) > 6 else 0, ha="right" if len(labels) > 6 else "center")
    ax.set_ylabel("% of split")
    ax.set_title("Label distribution", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, out)


@with_cjk_fonts
def plot_token_lengths(lengths: dict[str, list[int]], max_length: int, stats: dict[str, dict], model: str,
                       out: Path) -> Path | None:
    """Length histogram per split (share of rows) with a line at max_length; the truncated share is in the legend."""
    import numpy as np

    if not any(lengths.values()):
        return None
    plt = _pyplot()
    top = max(max_length, int(max(np.percentile(v, 99.5) for v in lengths.values() if v))) + 2
    step = -(-top // 80)  # integer-aligned bins: lengths are integers, uneven bins would draw a comb
    bins = np.arange(0, top + step + 1, step) - 0.5
    fig, ax = plt.subplots(figsize=(7, 3.8), dpi=110)
    for split, v in lengths.items():
        if v:
            share = stats[split].get("truncated_share", 0.0)
            ax.hist(np.minimum(v, top), bins=bins, histtype="step", lw=1.4, weights=np.full(len(v), 100 / len(v)),
                    label=f"{split}: {share:.1%} > {max_length}")
    ax.axvline(max_length, color="red", ls="--", lw=1, label=f"max_length {max_length}")
    ax.set_xlabel(f"tokens ({model}, with special tokens)")
    ax.set_ylabel("% of rows")
    ax.set_title("Text length", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, out)


def _show(text, limit: int = TEXT_CHARS) -> str:
    """Invisible characters made visible (\\u0007, \\ufffd is kept), long texts cut."""
    text = "".join(f"\\u{ord(c):04x}" if unicodedata.category(c) in ("Cc", "Cs", "Co", "Cn", "Cf") else c
                   for c in str(text))
    return text if len(text) <= limit else text[:limit] + "…"


def _n(v) -> str:
    return f"{v:,}" if isinstance(v, int) else f"{v:.4g}" if isinstance(v, float) else str(v)


def _main_script_share(share: dict[str, float]) -> float:
    """The main script's share among rows that have letters (digit- or emoji-only rows mix nothing)."""
    letters = {k: v for k, v in share.items() if k != "none"}
    return max(letters.values()) / sum(letters.values()) if letters else 1.0


def findings(s: dict) -> list[tuple[str, str]]:
    """(mark, line) per check for the at-a-glance header: ✓ clean, ⚠ look at it, · skipped or informational."""
    p, splits, ref = s["problems"], s["splits"], s["reference_split"]
    per = lambda key: ", ".join(f"{n} {_n(x[key]['count'])}" for n, x in splits.items() if key in x)
    mark = lambda bad: "⚠" if bad else "✓"
    out = [(mark(p["empty"]), f"Empty or whitespace-only rows: {per('empty')}"),
           (mark(p["encoding"]), f"Rows with encoding problems: {per('encoding')}"),
           (mark(p["duplicates"]), f"Exact duplicate rows (after normalisation): {per('duplicates')}"),
           (mark(p["conflicts"]), f"Texts with conflicting labels: {per('conflicts')}")]
    near = s["near"]
    if near["enabled"]:
        out.append((mark(p["near_duplicates"]), f"Near-duplicate texts (Jaccard ≥ {near['threshold']} on "
                                                f"{near['shingles']}): {per('near_duplicates')}"))
    if s["leakage"]:
        leak = ", ".join(f"{n} {_n(x['count'])} ({_n(x['exact'])} exact, {_n(x['near'])} near)" for n, x in s["leakage"].items())
        out.append((mark(p["leakage"]), f"Rows also in {ref}: {leak}"))
    sus = s["suspects"]
    if sus.get("skipped"):
        out.append(("·", f"Suspect labels: skipped ({sus['skipped']})"))
    else:
        out.append((mark(sus["flagged"]), f"Suspect labels in {ref}: {_n(sus['flagged'])} of {_n(sus['rows_checked'])} "
                                          f"rows (out-of-fold accuracy {sus['oof_accuracy']:.1%})"))
    ratio = splits[ref]["labels"]["imbalance_ratio"]
    out.append((mark(ratio is not None and ratio > IMBALANCE_WARN), f"Class imbalance in {ref} (largest/smallest class): {ratio}"))
    trunc = ", ".join(f"{n} {x['tokens'].get('truncated_share', 0):.1%}" for n, x in splits.items() if "tokens" in x)
    worst = max((x["tokens"].get("truncated_share", 0) for x in splits.values() if "tokens" in x), default=0)
    out.append((mark(worst > TRUNCATION_WARN), f"Rows longer than {s['max_length']} tokens: {trunc}"))
    mix = ", ".join(f"{n} " + " / ".join(f"{k} {v:.0%}" for k, v in list(x["scripts"]["share"].items())[:3] if v >= 0.005)
                    for n, x in splits.items())
    low = min((_main_script_share(x["scripts"]["share"]) for x in splits.values()), default=1)
    out.append(("·" if low >= SCRIPT_WARN else "⚠", f"Script mix (share of rows by main script): {mix}"))
    return out


def _label_blocks(s: dict, plot: str) -> list[Block]:
    splits = s["splits"]
    names = list(dict.fromkeys(k for x in splits.values() for k in x["labels"]["counts"]))
    rows = [[lab] + [f"{x['labels']['counts'].get(lab, 0):,} ({x['labels']['counts'].get(lab, 0) / max(1, sum(x['labels']['counts'].values())):.1%})"
                     for x in splits.values()] for lab in names]
    rows.append(["imbalance ratio"] + [_n(x["labels"]["imbalance_ratio"]) for x in splits.values()])
    sizes = [["rows"] + [_n(x["rows"]) for x in splits.values()], ["distinct texts"] + [_n(x["distinct_texts"]) for x in splits.values()]]
    return [("table", ["", *splits], sizes + rows), ("img", "Label distribution", plot)]


def _length_blocks(s: dict, plot: str | None) -> list[Block]:
    keys = ("count", "mean", "median", "p95", "max", "truncated", "truncated_share")
    rows = [[n] + [_n(x["tokens"].get(k, "")) for k in keys] for n, x in s["splits"].items() if "tokens" in x]
    blocks = [("p", f"Tokens per text with the {s['model']} tokenizer, special tokens included; "
                    f"'truncated' counts rows longer than max_length {s['max_length']}."),
              ("table", ["split", "rows", "mean", "median", "p95", "max", "truncated", "share"], rows)]
    return blocks + ([("img", "Text length in tokens", plot)] if plot else [])


def _example_blocks(s: dict) -> list[tuple[str, list[Block]]]:
    sp = s["splits"].items()
    dup = [[n, _show(e["text"]), e["size"], ", ".join(map(str, e["rows"]))] for n, x in sp for e in x["duplicates"]["examples"]]
    near = [[n, g, str(m["row"]), m["label"], m.get("similarity_to_first", "first"), _show(m["text"])]
            for n, x in sp for g, e in enumerate(x.get("near_duplicates", {}).get("examples", []), 1) for m in e["members"]]
    conf = [[n, _show(e["text"]), "; ".join(f"{k}: rows {', '.join(map(str, v))}" for k, v in e["labels"].items())]
            for n, x in sp for e in x["conflicts"]["examples"]]
    leak = [[n, e["kind"], e["similarity"], str(e["row"]), e["label"], _show(e["text"]), str(e["train_row"]), e["train_label"],
             _show(e["train_text"])] for n, x in s["leakage"].items() for e in x["examples"]]
    sus = s["suspects"]
    sus_rows = [[k, str(e["row"]), e["given"], e["predicted"], e["given_prob"], _show(e["text"])] for k, e in enumerate(sus["top"], 1)]
    sus_intro = (f"Skipped: {sus['skipped']}" if sus.get("skipped") else
                 f"{sus['model']}, {sus['folds']}-fold stratified out-of-fold probabilities, ranked by cleanlab "
                 f"(confident learning, self-confidence). {sus['flagged']:,} rows flagged; the top {len(sus['top'])} "
                 f"follow. P(given) is the out-of-fold probability of the given label. {' '.join(sus.get('notes', []))}")
    empty = [[n, x["empty"]["count"], ", ".join(map(str, x["empty"]["rows"]))] for n, x in sp if x["empty"]["count"]]
    enc = [[n, str(e["row"]), ", ".join(e["problems"]), _show(e["text"])] for n, x in sp for e in x["encoding"]["examples"]]
    scripts = [[n, " / ".join(f"{k} {v:.2%}" for k, v in x["scripts"]["share"].items()), x["scripts"]["mixed_rows"]] for n, x in sp]
    return [("Exact duplicates", [("table", ["split", "text", "copies", "rows"], dup)]),
            ("Near-duplicates", [("p", f"Jaccard ≥ {s['near']['threshold']} on {s['near']['shingles']} (MinHash LSH, "
                                        f"{s['near']['num_perm']} permutations, verified exactly)."),
                                 ("table", ["split", "group", "row", "label", "similarity to first", "text"], near)]),
            ("Label conflicts", [("table", ["split", "text", "labels"], conf)]),
            ("Leakage", [("table", ["split", "kind", "similarity", "row", "label", "text", "train row", "train label", "train text"], leak)]),
            ("Suspect labels", [("p", sus_intro), ("table", ["#", "row", "given", "predicted", "P(given)", "text"], sus_rows)]),
            ("Empty rows", [("table", ["split", "count", "rows (first 10)"], empty)]),
            ("Encoding problems", [("table", ["split", "row", "problems", "text"], enc)]),
            ("Scripts", [("table", ["split", "share of rows by main script", "rows mixing scripts"], scripts)])]


def _md_cell(v) -> str:
    return html.escape(_n(v), quote=False).replace("|", "\\|").replace("\n", " ")


def _render_md(title: str, marks, sections) -> str:
    lines = [f"# {title}", ""] + [f"- {m} {html.escape(t, quote=False)}" for m, t in marks]
    for name, blocks in sections:
        lines += ([] if lines[-1] == "" else [""]) + [f"## {name}", ""]
        for b in blocks:
            if b[0] == "p":
                lines += [b[1], ""]
            elif b[0] == "img":
                lines += [f"![{b[1]}]({b[2]})", ""]
            elif not b[2]:
                lines += ["None found.", ""]
            else:
                lines += ["| " + " | ".join(map(_md_cell, b[1])) + " |", "|" + "---|" * len(b[1])]
                lines += ["| " + " | ".join(map(_md_cell, r)) + " |" for r in b[2]] + [""]
    return "\n".join(lines).rstrip() + "\n"


def _render_html(title: str, marks, sections) -> str:
    e = lambda v: html.escape(_n(v))
    body = "".join(f"<li class='{'ok' if m == '✓' else 'warn' if m == '⚠' else 'info'}'>{m} {e(t)}</li>" for m, t in marks)
    parts = [f"<h1>{e(title)}</h1><ul class='glance'>{body}</ul>"]
    for name, blocks in sections:
        parts.append(f"<h2>{e(name)}</h2>")
        for b in blocks:
            if b[0] == "p":
                parts.append(f"<p>{e(b[1])}</p>")
            elif b[0] == "img":
                parts.append(f"<figure><img src='{e(b[2])}' alt='{e(b[1])}'><figcaption>{e(b[1])}</figcaption></figure>")
            elif not b[2]:
                parts.append("<p>None found.</p>")
            else:
                head = "".join(f"<th>{e(h)}</th>" for h in b[1])
                rows = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in b[2])
                parts.append(f"<table><tr>{head}</tr>{rows}</table>")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{e(title)}</title>
<style>body{{font-family:{CSS_FONT_STACK};max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 10px;text-align:left;vertical-align:top}}
ul.glance{{list-style:none;padding:0;font-size:1.05em}}li.ok{{color:#1a7f37}}li.warn{{color:#b35900;font-weight:bold}}
li.info{{color:#555}}figure{{display:inline-block;margin:0 1em}}img{{max-width:100%}}</style></head>
<body>{''.join(parts)}</body></html>
"""


def write_data_report(out_dir: Path, summary: dict, lengths: dict[str, list[int]],
                      title: str = "TuneForge data check") -> Path:
    """Write the PNGs, data_report.md and data_report.html into `out_dir`; return the HTML path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {n: x["labels"]["counts"] for n, x in summary["splits"].items()}
    labels_png = plot_label_distribution(counts, out_dir / "label_distribution.png").name
    stats = {n: x.get("tokens", {}) for n, x in summary["splits"].items()}
    lengths_png = plot_token_lengths(lengths, summary["max_length"], stats, summary["model"], out_dir / "token_lengths.png")
    files = ", ".join(f"{k}: {v}" for k, v in summary["inputs"].items())
    sections = [("Inputs", [("p", f"{files} · text column '{summary['text_column']}', label column '{summary['label_column']}'")]),
                ("Rows and labels", _label_blocks(summary, labels_png)),
                ("Text length", _length_blocks(summary, lengths_png.name if lengths_png else None)),
                *_example_blocks(summary)]
    marks = findings(summary)
    atomic_write_text(out_dir / "data_report.md", _render_md(title, marks, sections))
    atomic_write_text(out_dir / "data_report.html", _render_html(title, marks, sections))
    return out_dir / "data_report.html"


def write_summary_json(out_dir: Path, summary: dict) -> Path:
    """data_summary.json, UTF-8; lone surrogates (found in broken inputs) are written as JSON escapes."""
    import re

    path = Path(out_dir) / "data_summary.json"
    text = json.dumps(summary, indent=2, ensure_ascii=False)
    atomic_write_text(path, re.sub("[\ud800-\udfff]", lambda m: f"\\u{ord(m.group()):04x}", text))
    return path

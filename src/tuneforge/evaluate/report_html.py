"""The HTML page of the evaluation report, rendered from the view that `report.report_view` builds (the view
carries every sentence it shows, so this module imports nothing from report.py).

Every string from data (labels, texts, notes) goes through html.escape: texts are user data.
"""
from __future__ import annotations

import html

from tuneforge.evaluate.fonts import CSS_FONT_STACK

STYLE = """body{font-family:""" + CSS_FONT_STACK + """;max-width:960px;margin:2em auto;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}
td:first-child,th:first-child{text-align:left}td.text{text-align:left;max-width:480px}
.big{font-size:2em;font-weight:bold;margin:.3em 0}.sub{font-size:1.1em;color:#444}
figure{display:inline-block;margin:0 1em}"""


def _table(header: list[str], rows: list[list[str]], text_last: bool = False) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = ""
    for row in rows:
        cells = [f"<td>{e(str(c))}</td>" for c in row]
        if text_last:
            cells[-1] = f"<td class='text'>{e(str(row[-1]))}</td>"
        body += f"<tr>{''.join(cells)}</tr>"
    return f"<table><tr>{head}</tr>{body}</table>"


def _figure(file: str, caption: str) -> str:
    e = html.escape
    return f"<figure><img src='{e(file)}' alt='{e(caption)}'><figcaption>{e(caption)}</figcaption></figure>"


def _sections(view: dict) -> str:
    e = html.escape
    out = ""
    if view["calibration"]:
        cal = view["calibration"]
        out += f"<h2>Calibration</h2><p>{e(cal['text'])}</p>"
        out += _figure(cal["plot"], "Reliability diagram") if cal["plot"] else ""
    if view["baseline"]:
        b = view["baseline"]
        out += "<h2>Baseline</h2>"
        if b["rows"]:
            out += _table(["model", "accuracy", "macro F1", "train time"], [list(r) for r in b["rows"]])
        out += f"<p>{e(b['sentence'])}</p>"
    if view["errors"] is not None:
        out += f"<h2>Worst errors</h2><p>{e(view['errors_intro'])}</p>"
        rows = [[x["row"], x["true"], x["predicted"], f"{x['confidence']:.4f}", x["text"]] for x in view["errors"]]
        out += _table(["row", "true", "predicted", "confidence", "text"], rows, text_last=True) if rows else \
            "<p>No errors on this set.</p>"
    return out


def render_html(view: dict) -> str:
    e = html.escape
    ci_head = ["95% CI"] if view["has_ci"] else []
    rows = [[k, v, *([c] if view["has_ci"] else [])] for k, v, c in view["rows"]]
    metric_table = _table(["metric", "value", *ci_head], rows)
    per = _table(["label", "precision", "recall", "f1", "support"],
                 [[n, f"{c['precision']:.4f}", f"{c['recall']:.4f}", f"{c['f1']:.4f}", c["support"]]
                  for n, c in view["per_class"]])
    imgs = "".join(_figure(f, c) for c, f in view["plots"].items())
    note = "".join(f"<li>{e(n)}</li>" for n in view["notes"])
    sub = f"<p class='sub'>{e(view['headline_baseline'])}</p>" if view.get("headline_baseline") else ""
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{e(view['title'])}</title>
<style>{STYLE}</style></head>
<body><h1>{e(view['title'])}</h1><p class="big">{e(view['headline'])}</p>{sub}
{metric_table}
<h2>Per class</h2>{per}
{imgs}{_sections(view)}{f'<h2>Notes</h2><ul>{note}</ul>' if note else ''}</body></html>
"""

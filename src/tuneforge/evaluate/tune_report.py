"""The report of a hyperparameter search (report.md + report.html + PNGs + trials.json): the best trial against the
defaults, the search's settings and space, the optimisation history, parameter importances, parallel coordinates and
every trial. It renders the plain view that recipes/tune_outputs.py builds."""
from __future__ import annotations

import html
import json
from pathlib import Path

from tuneforge.evaluate.report_html import STYLE, _figure
from tuneforge.evaluate.sft_report import _html_table, _md_table
from tuneforge.evaluate.tune_plots import plot_history, plot_importances, plot_parallel
from tuneforge.model.artifact import atomic_write_text

TRIAL_HEADER = ["trial", "state", "value", "evaluations", "seconds", "values"]


def _num(value, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _values(row: dict) -> str:
    """The searched keys' values of a trial; the defaults' are marked as the base config's (auto ones resolved)."""
    text = ", ".join(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}" for k, v in row["values"].items())
    return f"base config{': ' + text if text else ''}" if row["defaults"] else text


def headline(view: dict) -> str:
    """One sentence: the best trial's value against the defaults'."""
    best, defaults, metric = view["best"], view["defaults"], view["metric"]
    if best is None:
        return "No trial finished."
    if defaults is not None and best["number"] == defaults["number"]:
        return (f"the defaults stay best: validation {metric} {best['value']:.4f} (trial {best['number']}); "
                "no trial beat them")
    text = f"best validation {metric} {best['value']:.4f} (trial {best['number']})"
    if defaults is not None:
        gain = best["value"] - defaults["value"]
        text += f" vs {defaults['value']:.4f} with the defaults (trial {defaults['number']}): {gain:+.4f}"
    return text


def comparison(view: dict) -> tuple[list[str], list[list[str]]]:
    """Defaults and best side by side: the validation value, the test scores their runs wrote, time and values."""
    best, defaults = view["best"], view["defaults"]
    if best is not None and defaults is not None and best["number"] == defaults["number"]:
        pairs = [("defaults = best", best)]
    else:
        pairs = [(label, r) for label, r in (("defaults", defaults), ("best", best)) if r is not None]
    tests = list(dict.fromkeys(k for k in (view["metric"], "accuracy", "macro_f1", "loss")
                               for _, r in pairs if k in (r.get("test") or {})))
    header = ["", "trial", f"validation {view['metric']}", *[f"test {k}" for k in tests], "seconds", "values"]
    rows = [[label, str(r["number"]), _num(r["value"]), *[_num((r.get("test") or {}).get(k)) for k in tests],
             _num(r["seconds"], 0), _values(r)] for label, r in pairs]
    return header, rows


def _trial_rows(view: dict) -> list[list[str]]:
    return [[str(r["number"]) + (" (defaults)" if r["defaults"] else ""), r["state"], _num(r["value"]),
             str(len(r["intermediate"])), _num(r["seconds"], 0), _values(r)] for r in view["trials"]]


def _plots(view: dict, folder: Path) -> list[tuple[str, str, str]]:
    """(title, file, caption) of each plot that could be drawn."""
    rows, metric = view["trials"], view["metric"]
    made = [("Optimisation history", plot_history(rows, metric, view["direction"], folder / "history.png"),
             f"validation {metric} per trial; the line is the best so far"),
            ("Parameter importances", plot_importances(view["importances"] or {}, folder / "importances.png"),
             "fANOVA importance of each searched key for the validation value (finished trials)"),
            ("Parallel coordinates", plot_parallel(rows, view["axes"], metric, folder / "parallel.png"),
             "one line per finished trial, coloured by the validation value")]
    return [(title, path.name, caption) for title, path, caption in made if path is not None]


def write_tune_report(folder: Path, view: dict) -> tuple[Path, Path]:
    """report.md, report.html, the PNGs and trials.json in `folder`. `view`: title, metric, direction, best and
    defaults (trial rows or None), trials (rows: number, state, value, params, defaults, intermediate
    [(evaluation, value)], seconds, folder, test, values), importances ({key: share} or None), axes [(key, log scale)],
    space [(key, description)], facts [(label, value)], notes [str]."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "trials.json", json.dumps(view["trials"], indent=2, ensure_ascii=False))
    plots, big = _plots(view, folder), headline(view)
    head, rows = comparison(view)
    space = [list(p) for p in view["space"]]
    facts = [list(f) for f in view["facts"]]
    md = [f"# {view['title']}", "", f"**{big}**", "", "## Best vs defaults", ""] + _md_table(head, rows)
    md += ["", "## Search", ""] + _md_table(["", ""], facts) + ["", "## Space", ""] + _md_table(["key", "range"], space)
    for title, file, caption in plots:
        md += ["", f"## {title}", "", f"![{caption}]({file})"]
    md += ["", "## Trials", ""] + _md_table(TRIAL_HEADER, _trial_rows(view))
    md += ["", "## Notes", ""] + [f"- {n}" for n in view["notes"]] if view["notes"] else []
    atomic_write_text(folder / "report.md", "\n".join(md) + "\n")
    e = html.escape
    page = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(view['title'])}</title>",
            f"<style>{STYLE}</style></head><body><h1>{e(view['title'])}</h1><p class='big'>{e(big)}</p>",
            "<h2>Best vs defaults</h2>", _html_table(head, rows, {len(head) - 1}),
            "<h2>Search</h2>", _html_table(["", ""], facts), "<h2>Space</h2>", _html_table(["key", "range"], space)]
    page += [f"<h2>{e(title)}</h2>{_figure(file, caption)}" for title, file, caption in plots]
    page += ["<h2>Trials</h2>", _html_table(TRIAL_HEADER, _trial_rows(view), {5})]
    if view["notes"]:
        page.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in view["notes"]) + "</ul>")
    atomic_write_text(folder / "report.html", "".join(page) + "</body></html>\n")
    return folder / "report.md", folder / "report.html"

"""The evaluation report: metrics.json, report.md and report.html with a headline (95% CI), per-class table,
confusion matrix, loss curve, calibration (reliability diagram), the TF-IDF baseline and the worst errors."""
from __future__ import annotations

import json
from pathlib import Path

from tuneforge.evaluate.calibration import T_MAX, T_MIN
from tuneforge.evaluate.plots import plot_confusion, plot_loss_curve, plot_reliability
from tuneforge.model.artifact import atomic_write_text

HEADLINE = ("accuracy", "macro_f1", "micro_f1", "macro_precision", "macro_recall", "loss")
ERROR_TEXT_CHARS = 240  # worst-error texts are cut here so the table stays readable
WORST_ERRORS_INTRO = "The mistakes the model was most confident about (often label noise worth a look)."
# plot_confusion and plot_loss_curve live in plots.py (drawn with the CJK font fallback); re-exported here.
__all__ = ["HEADLINE", "WORST_ERRORS_INTRO", "plot_confusion", "plot_loss_curve", "report_view", "write_report"]


def _fmt(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def _seconds(s) -> str:
    if s is None:
        return "—"
    if s < 10:
        return f"{s:.2f} s"
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


def _headline(metrics: dict, ci: dict) -> str:
    def part(key: str, label: str, pct: bool) -> str:
        value = f"{metrics[key]:.2%}" if pct else f"{metrics[key]:.3f}"
        if key not in ci:
            return f"{label} {value}"
        lo, hi = ci[key]
        return f"{label} {value} (95% CI {lo:.2%}–{hi:.2%})" if pct else f"{label} {value} (95% CI {lo:.3f}–{hi:.3f})"

    return f"{part('accuracy', 'accuracy', True)} · {part('macro_f1', 'macro F1', False)} · {metrics.get('samples')} rows"


def calibration_sentence(cal: dict, split: str = "this set") -> str:
    """What temperature scaling did, in words (shared by the report and the model card)."""
    t = cal["temperature"]
    where = cal.get("fitted_on", "validation")
    if where == "none":
        why = cal.get("note") or "fine-tune with eval.calibrate: true to fit one on validation"
        return (f"No temperature is stored in the model (T = 1): {why}. On {split}, the expected calibration error "
                f"(ECE, {cal.get('bins', 15)} bins) is {cal['ece_before']:.4f}.")
    source = "stored in the model" if where == "stored" else f"fitted on {where}"
    text = (f"Temperature T = {t:.3f} ({source}). On {split}, the expected calibration error (ECE, "
            f"{cal.get('bins', 15)} bins) is {cal['ece_before']:.4f} at T = 1 and {cal['ece_after']:.4f} at T = {t:.3f}.")
    if cal["ece_after"] > cal["ece_before"]:
        text += " Scaling did not improve calibration on this set (small sets make ECE noisy)."
    if not T_MIN * 1.01 < t < T_MAX * 0.99:
        text += (f" T sits at the edge of its search range ({T_MIN}–{T_MAX:g}): the fitting set had too few (or no) "
                 "mistakes to fit it well, so read the calibrated probabilities with care.")
    return text + " The predicted labels are the same at any T; only the probabilities change."


def baseline_view(baseline: dict, metrics: dict, train_seconds: float | None) -> dict:
    """Rows (model, accuracy, macro F1, train time) and the plain sentence on what the transformer buys."""
    from tuneforge.evaluate.baseline import compare_sentence

    if baseline.get("skipped"):
        return {"rows": [], "sentence": f"No baseline: {baseline.get('reason', 'not run')}"}
    rows = [("fine-tuned transformer", f"{metrics['accuracy']:.4f}", f"{metrics['macro_f1']:.4f}", _seconds(train_seconds)),
            (f"TF-IDF + logistic regression ({baseline.get('analyzer', '')})", f"{baseline['accuracy']:.4f}",
             f"{baseline['macro_f1']:.4f}", _seconds(baseline.get("fit_seconds")))]
    return {"rows": rows, "sentence": compare_sentence(metrics["accuracy"], baseline["accuracy"],
                                                       metrics["macro_f1"], baseline["macro_f1"])}


def report_view(title: str, metrics: dict, names, plots: dict[str, str], notes: list[str], *, ci=None,
                calibration=None, errors=None, baseline=None, train_seconds=None, split="this set") -> dict:
    """Everything the Markdown and HTML renderers show, computed once so both say the same thing."""
    ci = ci or {}
    view = {"title": title, "headline": _headline(metrics, ci), "names": names, "plots": plots, "notes": notes,
            "rows": [(k, _fmt(metrics[k]), (f"{ci[k][0]:.4f}–{ci[k][1]:.4f}" if k in ci else ""))
                     for k in HEADLINE if k in metrics],
            "per_class": [(n, metrics["per_class"][n]) for n in names], "has_ci": bool(ci),
            "samples": metrics.get("samples"), "calibration": None, "baseline": None, "errors": errors,
            "errors_intro": WORST_ERRORS_INTRO}
    if calibration:
        view["calibration"] = {"text": calibration_sentence(calibration, split), "plot": calibration.get("plot")}
    if baseline:
        view["baseline"] = baseline_view(baseline, metrics, train_seconds)
        view["headline_baseline"] = view["baseline"]["sentence"]
    return view


def _cell(text: str) -> str:
    text = " ".join(str(text).split())
    text = text if len(text) <= ERROR_TEXT_CHARS else text[:ERROR_TEXT_CHARS - 1] + "…"
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _markdown(view: dict) -> str:
    head = "| metric | value | 95% CI |\n|---|---|---|" if view["has_ci"] else "| metric | value |\n|---|---|"
    lines = [f"# {view['title']}", "", f"**{view['headline']}**", ""]
    if view.get("headline_baseline"):
        lines += [f"_{view['headline_baseline']}_", ""]
    lines += [head]
    lines += [f"| {k} | {v} | {c} |" if view["has_ci"] else f"| {k} | {v} |" for k, v, c in view["rows"]]
    lines += [f"| samples | {view['samples']} |" + ("  |" if view["has_ci"] else ""), "", "## Per class", "",
              "| label | precision | recall | f1 | support |", "|---|---|---|---|---|"]
    for name, c in view["per_class"]:
        lines.append(f"| {name} | {c['precision']:.4f} | {c['recall']:.4f} | {c['f1']:.4f} | {c['support']} |")
    for caption, file in view["plots"].items():
        lines += ["", f"## {caption}", "", f"![{caption}]({file})"]
    if view["calibration"]:
        cal = view["calibration"]
        lines += ["", "## Calibration", "", cal["text"]]
        if cal["plot"]:
            lines += ["", f"![Reliability diagram]({cal['plot']})"]
    if view["baseline"]:
        b = view["baseline"]
        lines += ["", "## Baseline", ""]
        if b["rows"]:
            lines += ["| model | accuracy | macro F1 | train time |", "|---|---|---|---|"]
            lines += [f"| {' | '.join(r)} |" for r in b["rows"]] + [""]
        lines.append(b["sentence"])
    if view["errors"] is not None:
        lines += ["", "## Worst errors", "", view["errors_intro"], ""]
        if view["errors"]:
            lines += ["| row | true | predicted | confidence | text |", "|---|---|---|---|---|"]
            lines += [f"| {e['row']} | {_cell(e['true'])} | {_cell(e['predicted'])} | {e['confidence']:.4f} | "
                      f"{_cell(e['text'])} |" for e in view["errors"]]
        else:
            lines.append("No errors on this set.")
    if view["notes"]:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in view["notes"]]
    return "\n".join(lines) + "\n"


def write_report(out_dir: Path, metrics: dict, names: tuple[str, ...], history: list[dict],
                 title: str = "TuneForge evaluation", notes: list[str] | None = None, *, ci: dict | None = None,
                 calibration: dict | None = None, errors: list[dict] | None = None, baseline: dict | None = None,
                 train_seconds: float | None = None, split: str = "this set") -> Path:
    """Write metrics.json, report.md, report.html and the PNGs; return the HTML path.

    Optional sections: `ci` {metric: [lo, hi]} from `calibration.bootstrap_ci`; `calibration` from
    `calibration.calibration_summary` (+ `fitted_on`); `errors` from `calibration.worst_errors`; `baseline` from
    `baseline.run_baseline`. metrics.json also gets their scalars (ci, calibration, baseline)."""
    from tuneforge.evaluate.report_html import render_html

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots: dict[str, str] = {}
    if plot_loss_curve(history, out_dir / "loss_curve.png"):
        plots["Loss curve"] = "loss_curve.png"
    if "confusion_matrix" in metrics:
        plot_confusion(metrics["confusion_matrix"], names, out_dir / "confusion_matrix.png")
        plots["Confusion matrix"] = "confusion_matrix.png"
    if calibration:
        plot_reliability(calibration, out_dir / "reliability.png")
        calibration = {**calibration, "plot": "reliability.png"}
    atomic_write_text(out_dir / "metrics.json", json.dumps(_metrics_file(metrics, ci, calibration, baseline),
                                                           indent=2, ensure_ascii=False))
    view = report_view(title, metrics, names, plots, notes or [], ci=ci, calibration=calibration, errors=errors,
                       baseline=baseline, train_seconds=train_seconds, split=split)
    atomic_write_text(out_dir / "report.md", _markdown(view))
    atomic_write_text(out_dir / "report.html", render_html(view))
    return out_dir / "report.html"


def _metrics_file(metrics: dict, ci, calibration, baseline) -> dict:
    from tuneforge.evaluate.analysis import baseline_scalars, calibration_scalars

    extra = {"ci": ci or None, "calibration": calibration_scalars(calibration), "baseline": baseline_scalars(baseline)}
    return {**metrics, **{k: v for k, v in extra.items() if v}}

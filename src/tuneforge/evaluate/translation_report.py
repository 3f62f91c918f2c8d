"""The translation report: metrics.json, report.md and report.html with the headline BLEU (95% CI), the scores per
split with their sacreBLEU signatures, the loss curve, validation BLEU against training wall time, hypothesis against
reference lengths, the best and worst test translations side by side, and the run facts.

The view (see `write_translation_report`) is built by the recipe; this module only renders it. Sources, references
and hypotheses are user data: they go through html.escape in the HTML and have their pipes escaped in the Markdown
(the table helpers of sft_report.py).
"""
from __future__ import annotations

import html
import json
from pathlib import Path

from tuneforge.evaluate.fonts import with_cjk_fonts
from tuneforge.evaluate.plots import _pyplot, plot_loss_curve, save_figure
from tuneforge.evaluate.report_html import STYLE, _figure
from tuneforge.evaluate.sft_report import _cut, _html_table, _md_table
from tuneforge.model.artifact import atomic_write_text

EXAMPLES = 5  # best and worst sentences shown
MINUTES_AFTER = 180  # the BLEU curve's time axis switches from seconds to minutes past this many seconds
SCORE_HEADER = ["split", "sentences", "BLEU", "BLEU 95% CI", "chrF", "chrF 95% CI", "length ratio", "BP",
                "held-out loss"]
EXAMPLE_HEADER = ["row", "source", "reference", "hypothesis", "chrF"]


def _ci(m: dict, key: str) -> str:
    lo_hi = m.get(f"{key}_ci")
    return f"{lo_hi[0]:.1f}–{lo_hi[1]:.1f}" if lo_hi else ""


def headline_split(scores: dict) -> str:
    """The split the headline reports: test when scored, else validation, else the first."""
    return next((s for s in ("test", "validation") if s in scores), next(iter(scores)))


def headline(m: dict) -> str:
    """'BLEU 35.2 (95% CI 34.1–36.3) · chrF 61.0 (95% CI 60.2–61.8) · length ratio 0.982'."""
    parts = []
    for key, name in (("bleu", "BLEU"), ("chrf", "chrF")):
        ci = _ci(m, key)
        parts.append(f"{name} {m[key]:.1f}" + (f" (95% CI {ci})" if ci else ""))
    return " · ".join(parts + [f"length ratio {m['length_ratio']:.3f}"])


def _score_rows(scores: dict) -> list[list[str]]:
    return [[split, f"{m['sentences']:,}", f"{m['bleu']:.2f}", _ci(m, "bleu"), f"{m['chrf']:.2f}", _ci(m, "chrf"),
             f"{m['length_ratio']:.3f}", f"{m['bp']:.3f}", f"{m['loss']:.4f}" if "loss" in m else ""]
            for split, m in scores.items()]


def signatures(scores: dict) -> list[tuple[str, str]]:
    """(which, signature) lines: one per distinct signature, naming the splits that share it."""
    out: list[tuple[str, str]] = []
    for key, name in (("bleu_signature", "BLEU"), ("chrf_signature", "chrF")):
        by_sig: dict[str, list[str]] = {}
        for split, m in scores.items():
            by_sig.setdefault(m[key], []).append(split)
        for sig, splits in by_sig.items():
            out.append((f"{name} ({', '.join(splits)})", sig))
    return out


def averaging_sentence(averaging: dict | None) -> str:
    """What checkpoint averaging did, in words (shared by the report and the model card). `averaging` is None when
    nothing was averaged, else {"checkpoints": K, "metric": "bleu"|"loss", "best_single": x, "average": y, "kept":
    "average"|"best single checkpoint"} (+ optional "note")."""
    if not averaging:
        return ("No checkpoint averaging: train.average_checkpoints was below 2, or fewer than 2 complete checkpoints "
                "were saved.")
    metric = "BLEU" if averaging["metric"] == "bleu" else averaging["metric"]
    kept = "the average was kept" if averaging["kept"] == "average" else f"the {averaging['kept']} was kept"
    text = (f"The weights of the last {averaging['checkpoints']} checkpoints were averaged: validation {metric} "
            f"{averaging['average']} for the average against {averaging['best_single']} for the best single "
            f"checkpoint, so {kept}.")
    return text + (f" {averaging['note']}" if averaging.get("note") else "")


def decoding_sentence(decoding: dict | None) -> str:
    """'Beam search with 4 beams, length penalty 1.0, ...' from the BeamSettings fields."""
    if not decoding:
        return ""
    beams = decoding.get("beams", 1)
    how = "Greedy decoding" if beams == 1 else \
        f"Beam search with {beams} beams, length penalty {decoding.get('length_penalty', 1.0)}"
    cap = decoding.get("max_new_tokens")
    how += f", at most {cap} new tokens" if cap else ", at most 1.5 × each source + 10 new tokens"
    if decoding.get("no_repeat_ngram"):
        how += f", no repeated {decoding['no_repeat_ngram']}-grams"
    return how + "."


def best_and_worst(examples: list[dict], k: int = EXAMPLES) -> tuple[list[dict], list[dict]]:
    """The k highest- and k lowest-scoring examples (no sentence in both lists; ties keep data order)."""
    best = sorted(range(len(examples)), key=lambda i: -examples[i]["score"])[:k]
    shown = set(best)
    worst = [i for i in sorted(range(len(examples)), key=lambda i: examples[i]["score"]) if i not in shown][:k]
    return [examples[i] for i in best], [examples[i] for i in worst]


@with_cjk_fonts
def plot_bleu_curve(history: list[dict], out: Path, final: float | None = None,
                    final_label: str = "final validation BLEU") -> Path | None:
    """Validation BLEU of each evaluation during training against training wall time, with the final score as a
    dashed line; None when no record carries both "bleu" and "train_seconds"."""
    points = [(r["train_seconds"], r["bleu"]) for r in history
              if r.get("split") == "validation" and "bleu" in r and "train_seconds" in r]
    if not points:
        return None
    minutes = max(t for t, _ in points) > MINUTES_AFTER
    xs = [t / 60 if minutes else t for t, _ in points]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=110)
    ax.plot(xs, [b for _, b in points], "o-", lw=1.5, label="validation BLEU during training (greedy)")
    if final is not None:
        ax.axhline(final, ls="--", color="tab:red", lw=1.2, label=f"{final_label} {final:.1f}")
    ax.set_xlabel("training wall time (" + ("min" if minutes else "s") + ")")
    ax.set_ylabel("BLEU")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, out)


@with_cjk_fonts
def plot_lengths(examples: list[dict], tokenize: str, out: Path) -> Path | None:
    """Hypothesis against reference length per sentence, in sacreBLEU's tokens, with the diagonal: sentences far
    below it were cut short, far above it ran on (repetition). None without examples."""
    from tuneforge.evaluate.translation import token_counts

    if not examples:
        return None
    ref = token_counts([e["reference"] for e in examples], tokenize)
    hyp = token_counts([e["hypothesis"] for e in examples], tokenize)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 4.2), dpi=110)
    top = max(ref + hyp + [1])
    ax.plot([0, top], [0, top], "--", color="#888", lw=1)
    ax.scatter(ref, hyp, s=8, alpha=0.4)
    ax.set_xlabel(f"reference length (tokens, {tokenize})")
    ax.set_ylabel("hypothesis length")
    ax.set_title(f"{len(examples)} sentences, length ratio {sum(hyp) / max(sum(ref), 1):.3f}", fontsize=9)
    ax.grid(alpha=0.3)
    return save_figure(fig, out)


def _example_cells(e: dict) -> list[str]:
    return [str(e.get("row", "")), _cut(e["source"]), _cut(e["reference"]), _cut(e["hypothesis"]), f"{e['score']:.1f}"]


def _plots(folder: Path, view: dict, split: str) -> dict[str, str]:
    """caption → PNG file name, for the plots there is data for."""
    scores, plots = view["scores"], {}
    if plot_loss_curve(view["history"], folder / "loss_curve.png"):
        plots["Loss curve"] = "loss_curve.png"
    final = scores.get("validation", {}).get("bleu")
    beams = (view.get("decoding") or {}).get("beams")
    label = "final validation BLEU" + (f" (beam {beams})" if beams and beams > 1 else "")
    if plot_bleu_curve(view["history"], folder / "bleu_curve.png", final, label):
        plots["Validation BLEU against training time"] = "bleu_curve.png"
    ex_split = view.get("examples_split", split)
    tokenize = scores.get(ex_split, scores[split])["tokenize"]
    if plot_lengths(view["examples"], tokenize, folder / "lengths.png"):
        plots[f"Hypothesis and reference lengths ({ex_split})"] = "lengths.png"
    return plots


def write_translation_report(folder: Path, view: dict) -> tuple[Path, Path]:
    """Write metrics.json, report.md, report.html and the PNGs (loss_curve.png, bleu_curve.png, lengths.png, each
    when there is data for it) into `folder`, every file atomically; return (report.md, report.html).

    `view` keys (the recipe builds it):
      "title": str — the page title.
      "scores": {split: dict} in display order — each `translation.bleu_chrf` output (bleu, chrf, bleu_ci, chrf_ci,
          bleu_signature, chrf_signature, tokenize, length_ratio, bp, sentences, ...), optionally plus "loss" (the
          held-out token loss). The headline reports test, else validation.
      "history": list[dict] — the run's metrics.jsonl records: train records {step, loss, lr, tokens_per_s, ...} (no
          "split"), validation records {step, split: "validation", loss, bleu, train_seconds}.
      "examples": list[dict] — every scored sentence of `examples_split`: {row, source, reference, hypothesis,
          score} with score the sentence chrF (`translation.scored_examples`); the 5 best and 5 worst are shown,
          all of them feed the length plot. May be empty.
      "examples_split": str — the split the examples come from (default: the headline split).
      "facts": list[tuple[str, str]] — (label, value) lines about the run in display order: model, preset,
          parameters, pairs, steps, tokens/s, train time, stop reason, ...
      "averaging": dict | None — the recipe's checkpoint-averaging outcome (see `averaging_sentence`).
      "decoding": dict | None — the final decoding settings {beams, length_penalty, max_new_tokens,
          no_repeat_ngram} (the `BeamSettings` fields).
      "notes": list[str] — extra lines (pairs left out, cut sources, ...).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    scores, title = view["scores"], view["title"]
    split = headline_split(scores)
    ex_split = view.get("examples_split", split)
    best, worst = best_and_worst(view["examples"])
    facts = [list(f) for f in view.get("facts", [])]
    averaging, decoding = averaging_sentence(view.get("averaging")), decoding_sentence(view.get("decoding"))
    notes = view.get("notes", [])
    record = {"scores": scores, "headline_split": split, "decoding": view.get("decoding"),
              "averaging": view.get("averaging"), "examples_split": ex_split, "best": best, "worst": worst}
    atomic_write_text(folder / "metrics.json", json.dumps(record, indent=2, ensure_ascii=False))
    plots = _plots(folder, view, split)
    big, rows, sigs = headline(scores[split]), _score_rows(scores), signatures(scores)
    ci_note = ("95% intervals: sacreBLEU's bootstrap over sentences (the resampled scores' mean ± half the range "
               "between their 2.5th and 97.5th percentiles; the signature gives resamples and seed).") \
        if any("bleu_ci" in m for m in scores.values()) else ""
    n = len(view["examples"])
    intro = {"Best translations": f"The {len(best)} {ex_split} sentences of {n:,} with the highest sentence chrF.",
             "Worst translations": f"The {len(worst)} {ex_split} sentences of {n:,} with the lowest sentence chrF."}

    md = [f"# {title}", "", f"**{big}** (the {split} set, {scores[split]['sentences']:,} sentences)", ""]
    md += _md_table(SCORE_HEADER, rows) + [""]
    md += [f"- {name} signature: `{sig}`" for name, sig in sigs]
    md += ["", " ".join(x for x in (decoding, ci_note) if x)] if decoding or ci_note else []
    md += ["", "## Training", ""] + _md_table(["", ""], facts) + ["", averaging]
    for caption, file in plots.items():
        md += ["", f"## {caption}", "", f"![{caption}]({file})"]
    for name, chosen in (("Best translations", best), ("Worst translations", worst)):
        if chosen:
            md += ["", f"## {name}", "", intro[name], ""] + _md_table(EXAMPLE_HEADER, [_example_cells(e)
                                                                                          for e in chosen])
    md += ["", "## Notes", ""] + [f"- {n}" for n in notes] if notes else []
    atomic_write_text(folder / "report.md", "\n".join(md) + "\n")

    e = html.escape
    page = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>{STYLE}</style>",
            f"</head><body><h1>{e(title)}</h1><p class='big'>{e(big)}</p>",
            f"<p class='sub'>the {e(split)} set, {scores[split]['sentences']:,} sentences</p>",
            _html_table(SCORE_HEADER, rows),
            "<ul>" + "".join(f"<li>{e(name)} signature: <code>{e(sig)}</code></li>" for name, sig in sigs) + "</ul>"]
    page += [f"<p>{e(' '.join(x for x in (decoding, ci_note) if x))}</p>"] if decoding or ci_note else []
    page += ["<h2>Training</h2>", _html_table(["", ""], facts), f"<p>{e(averaging)}</p>"]
    page += [_figure(file, caption) for caption, file in plots.items()]
    for name, chosen in (("Best translations", best), ("Worst translations", worst)):
        if chosen:
            page += [f"<h2>{name}</h2><p>{e(intro[name])}</p>",
                     _html_table(EXAMPLE_HEADER, [_example_cells(x) for x in chosen], {1, 2, 3})]
    if notes:
        page.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in notes) + "</ul>")
    atomic_write_text(folder / "report.html", "".join(page) + "</body></html>\n")
    return folder / "report.md", folder / "report.html"

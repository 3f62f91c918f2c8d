"""`tuneforge explain`: integrated-gradients attributions for texts on a fine-tuned classifier, and the HTML view."""
from __future__ import annotations

import html
from pathlib import Path

from tuneforge.data.sources import clean_text
from tuneforge.errors import UserError
from tuneforge.evaluate.explain import Explanation, integrated_gradients
from tuneforge.export.runtime import ONNX_FILE
from tuneforge.model.artifact import atomic_write_text

GREEN, RED = (22, 163, 74), (220, 38, 38)  # supports / opposes the explained label


def read_text_lines(path: str) -> list[str]:
    """One text per line of a UTF-8 file; blank lines are skipped."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"--file {path}: no such file. Give a text file with one text per line.")
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise UserError(f"--file {path}: not UTF-8 (byte {exc.start}). Save it as UTF-8.") from None
    return [line for line in lines if line.strip()]


def load_explainable(model_path: str):
    """(model, tokenizer, manifest) of a fine-tuned PyTorch classifier folder, or a one-line UserError."""
    from tuneforge.model.build import is_classifier_folder, load_trained
    from tuneforge.model.manifest import read_manifest
    from tuneforge.model.resolve import resolve_model

    folder = resolve_model(model_path)
    if (Path(folder) / ONNX_FILE).is_file():  # a graph and no PyTorch weights: nothing to differentiate
        raise UserError(f"{model_path}: an ONNX export (model.onnx) cannot be explained: integrated gradients need the "
                        "PyTorch weights. Use the model folder it was exported from, e.g. runs/x/final.")
    if not is_classifier_folder(model_path):
        raise UserError(f"{model_path}: an encoder without a classification head; explain a fine-tuned classifier "
                        "folder, e.g. runs/x/final.")
    model, tokenizer = load_trained(model_path)
    return model, tokenizer, read_manifest(folder)


def explain(model_path: str, texts: list[str], target: str | None = None, steps: int = 50,
            output: str | None = "explain.html", words: bool = True) -> list[Explanation]:
    """Explain each text (cleaned as `tuneforge predict` cleans it) and write the HTML view to `output`
    (default explain.html in the current folder; None writes nothing)."""
    from tuneforge.serve.predictor import stored_temperature

    texts = [clean_text(t) for t in texts]
    if not texts:
        raise UserError('no text to explain: give --text "..." (repeatable) or --file texts.txt.')
    if not all(texts):
        raise UserError(f"text #{texts.index('') + 1} is empty. Give a non-empty --text.")
    model, tokenizer, manifest = load_explainable(model_path)
    temperature = stored_temperature(model.config, manifest)
    max_length = manifest.max_length
    explanations = [integrated_gradients(model, tokenizer, text, target, steps, max_length, temperature=temperature)
                    for text in texts]
    if output:
        out = Path(output)
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, render_html(explanations, model_path, words))
    return explanations


def _colour(share: float) -> str:
    """Background for an attribution normalised to [-1, 1] within its text: hue by sign, opacity by size."""
    r, g, b = GREEN if share >= 0 else RED
    return f"rgba({r},{g},{b},{min(abs(share), 1.0) * 0.8:.3f})"


def _block(ex: Explanation, words: bool) -> str:
    items = ex.words() if words else list(zip(ex.tokens, ex.attributions))
    scale = max((abs(s) for _, s in items), default=0.0) or 1.0
    spans = " ".join(f'<span class="tok" style="background:{_colour(s / scale)}" title="{s:+.4f}">'
                     f"{html.escape(w)}</span>" for w, s in items)
    target = "" if ex.target == ex.label else (f" · explaining <b>{html.escape(ex.target)}</b> "
                                               f"(p = {ex.target_probability:.3f})")
    gap_class = "" if ex.converged() else ' class="warn"'
    notes = []
    if not ex.converged():
        notes.append(f"the gap is large: run again with more steps (e.g. --steps {ex.steps * 4}).")
    if ex.truncated:
        notes.append("the text was cut at the model's max length; the rest is not explained.")
    note = "".join(f'<p class="note">{html.escape(n)}</p>' for n in notes)
    return (f'<section><p class="pred">predicted <b>{html.escape(ex.label)}</b> (p = {ex.probability:.3f}){target}</p>'
            f'<p class="text">{spans}</p>'
            f"<p{gap_class}>sum of attributions {sum(ex.attributions):+.4f} · f(x) − f(baseline) {ex.delta:+.4f} · "
            f"completeness gap {ex.completeness_gap:+.4f} ({ex.steps} steps)</p>{note}</section>")


def render_html(explanations: list[Explanation], model_path: str, words: bool = True) -> str:
    """A standalone page: a legend, then one block per text."""
    blocks = "\n".join(_block(ex, words) for ex in explanations)
    unit = "words (sum of their word pieces)" if words else "word pieces"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>TuneForge explain</title>
<style>
body {{ font: 15px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }}
section {{ border-top: 1px solid #ddd; padding: .6rem 0; }}
.text {{ font-size: 1.15rem; line-height: 2.1; }}
.tok {{ padding: .1rem .2rem; border-radius: .25rem; }}
.pred, .legend {{ margin: .2rem 0; }}
.warn, .note {{ color: #b45309; }}
</style></head><body>
<h1>Integrated gradients</h1>
<p>Model <code>{html.escape(model_path)}</code>. Each of the {unit} is coloured by its contribution to the logit
of the explained label (the predicted one unless --target was given), relative to a baseline where every token is
[PAD]. Hover a token for its value.</p>
<p class="legend"><span class="tok" style="background:{_colour(1)}">green</span> supports the label ·
<span class="tok" style="background:{_colour(-1)}">red</span> opposes it · the stronger the colour, the larger the
share (scaled per text). The attributions add up to f(x) − f(baseline); the completeness gap is how far they miss it
(large: raise --steps).</p>
{blocks}
</body></html>
"""

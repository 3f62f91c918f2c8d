"""The trust commands: `data check`, `data redact`, `baseline` and `explain`. Registered on the main app by cli.py."""
from __future__ import annotations

import typer

data_app = typer.Typer(no_args_is_help=True, help="Check a labelled data set (duplicates, leakage, conflicts, suspect labels) and redact personal data.")


def baseline(
    config: str | None = typer.Argument(None, help="YAML config (optional; only its data: section is used). Flags and --set override it."),
    train: str | None = typer.Option(None, "--train", help="Training data: CSV, TSV, JSONL, Parquet or a `datasets` folder."),
    validation: str | None = typer.Option(None, "--validation", help="Validation data. Split off train (stratified, seeded) when absent, as finetune does."),
    test: str | None = typer.Option(None, "--test", help="Test data. Split off train when absent, as finetune does."),
    text_column: str | None = typer.Option(None, "--text-column", help="Column with the input text."),
    label_column: str | None = typer.Option(None, "--label-column", help="Column with the label (string or int; single-label only)."),
    output: str = typer.Option("runs/baseline", "--output", "-o", help="Folder for metrics.json, split.json and baseline.md."),
    overrides: list[str] = typer.Option([], "--set", help="Override a config key, e.g. --set data.split_seed=7 (repeatable; only data.* matters here)."),
) -> None:
    """TF-IDF + logistic regression alone (word n-grams, char n-grams for CJK) on the split a fine-tune would use."""
    from tuneforge.config import FinetuneConfig, load_config
    from tuneforge.recipes.baseline import baseline as run

    base = {"data": {"train": train, "validation": validation, "test": test, "text_column": text_column,
                     "label_column": label_column}}
    cfg = load_config(config, FinetuneConfig, overrides, base)
    summary = run(cfg.data, output)
    _print_baseline(summary)


def _print_baseline(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="TuneForge baseline — TF-IDF + logistic regression")
    for name in ("split", "accuracy", "macro F1", "rows", "train rows", "fit seconds", "analyzer"):
        table.add_column(name, justify="left" if name in ("split", "analyzer") else "right")
    for split, m in summary["metrics"].items():
        table.add_row(split, f"{m['accuracy']:.4f}", f"{m['macro_f1']:.4f}", str(m["eval_rows"]), str(m["train_rows"]),
                      f"{m['fit_seconds']:.2f}", m["analyzer"])
    Console(width=max(100, Console().width)).print(table)
    typer.echo(f"metrics: {summary['files']['metrics']}\nreport:  {summary['files']['report']}")


@data_app.command("check")
def data_check(
    train: str = typer.Option(..., "--train", help="Training data: CSV, TSV, JSONL, Parquet or a `datasets` folder."),
    validation: str | None = typer.Option(None, "--validation", help="Validation data, checked and compared with train (leakage)."),
    test: str | None = typer.Option(None, "--test", help="Test data, checked and compared with train (leakage)."),
    text_column: str = typer.Option("text", "--text-column", help="Column with the input text."),
    label_column: str = typer.Option("label", "--label-column", help="Column with the label (string, int, or a JSON list for multi-label)."),
    label_separator: str | None = typer.Option(None, "--label-separator", help="Split string labels on this (e.g. '|') for multi-label."),
    model: str = typer.Option("minilm-l6", "--model", help="Tokenizer for the text lengths: alias, local model folder or hub id."),
    max_length: int = typer.Option(128, "--max-length", help="Sequence length of the planned fine-tune; longer rows count as truncated."),
    near_threshold: float = typer.Option(0.8, "--near-threshold", help="Jaccard similarity in (0, 1] at or above which two texts count as near-duplicates."),
    top_k: int = typer.Option(20, "--top-k", help="How many suspect labels to list (0 skips the suspect-label check)."),
    output: str = typer.Option("reports/data-check", "--output", "-o", help="Folder for data_report.md/.html, data_summary.json and plots."),
    fail_on: str | None = typer.Option(None, "--fail-on", help="Exit 1 when any of these is found, e.g. leakage,conflicts. Kinds: duplicates, near_duplicates, conflicts, leakage, suspects, empty, encoding."),
) -> None:
    """Check labelled data: duplicates, near-duplicates, label conflicts, leakage, suspect labels, lengths, encoding."""
    from tuneforge.recipes.data_check import check_data, parse_fail_on

    kinds = parse_fail_on(fail_on)  # before the slow part: a typo should fail at once
    summary = check_data(train, validation, test, text_column, label_column, output, model=model, max_length=max_length,
                         near_threshold=near_threshold, top_k=top_k, label_separator=label_separator)
    _print_data_check(summary)
    failed = [k for k in kinds if summary["problems"][k] > 0]
    if failed:
        typer.echo(f"found: {', '.join(failed)} (--fail-on)", err=True)
        raise typer.Exit(1)


def _print_data_check(summary: dict) -> None:
    from pathlib import Path

    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from tuneforge.evaluate.data_report import findings

    table = Table(title="TuneForge data check", show_header=False)
    table.add_column("", width=2)
    table.add_column("finding")
    for mark, line in findings(summary):
        table.add_row(mark, escape(line))
    Console(width=max(100, Console().width)).print(table)
    typer.echo(f"report:  {summary['report']}\nsummary: {Path(summary['report']).with_name('data_summary.json')}")


@data_app.command("redact")
def data_redact(
    input: str = typer.Argument(..., metavar="INPUT", help="Table to redact: CSV, TSV, JSONL, Parquet or a `datasets` folder."),
    output: str = typer.Argument(..., metavar="OUTPUT", help="Where to write it: .csv, .tsv, .jsonl or .parquet (the format follows the suffix)."),
    text_column: str = typer.Option("text", "--text-column", help="Column with the text to redact; other columns are copied as they are."),
) -> None:
    """Replace e-mails, phones, China ID numbers, cards, IPs, URLs and IBANs with [EMAIL], [PHONE] ... placeholders."""
    from tuneforge.recipes.redact import redact_file

    summary = redact_file(input, output, text_column)
    for kind, n in summary["counts"].items():
        typer.echo(f"{kind:<6} {n}")
    typer.echo(f"rows: {summary['rows']}, changed: {summary['rows_changed']}\noutput: {summary['output']}")


def explain(
    model: str = typer.Option(..., "--model", help="A fine-tuned PyTorch classifier folder, e.g. runs/x/final (an ONNX export cannot be explained)."),
    text: list[str] = typer.Option([], "--text", help='A text to explain (repeatable): --text "..." --text "...".'),
    file: str | None = typer.Option(None, "--file", help="A UTF-8 text file, one text per line (explained after the --text ones)."),
    target: str | None = typer.Option(None, "--target", help="Label whose logit to explain (default: the predicted label)."),
    steps: int = typer.Option(50, "--steps", help="Interpolation points of the path integral (16 per forward+backward pass). Raise it when the completeness gap is large."),
    output: str = typer.Option("explain.html", "--output", "-o", help="The HTML view (coloured tokens with values on hover)."),
    words: bool = typer.Option(True, "--words/--pieces", help="Whole words (the sum of their word pieces) or the raw word pieces."),
) -> None:
    """Show each token's contribution to the predicted label (integrated gradients), in colour and as an HTML page."""
    from tuneforge.recipes.explain import explain as run
    from tuneforge.recipes.explain import read_text_lines

    texts = [*text, *(read_text_lines(file) if file else [])]
    for ex in run(model, texts, target, steps, output, words):
        _print_explanation(ex, words)
    typer.echo(f"html: {output}")


def _print_explanation(ex, words: bool) -> None:
    """One line of tokens on a green (supports) / red (opposes) background, then the label and the top 3 tokens."""
    from rich.console import Console
    from rich.text import Text

    items = ex.words() if words else list(zip(ex.tokens, ex.attributions))
    scale = max((abs(s) for _, s in items), default=0.0) or 1.0
    line = Text()
    for i, (token, score) in enumerate(items):
        share, hue = min(abs(score) / scale, 1.0) * 0.8, (22, 163, 74) if score >= 0 else (220, 38, 38)
        r, g, b = (round(255 * (1 - share) + c * share) for c in hue)  # white blended towards the hue
        line.append(" " if i else "").append(token, style=f"black on rgb({r},{g},{b})")
    top = ", ".join(f"{t} {s:+.3f}" for t, s in sorted(items, key=lambda x: -x[1])[:3])
    target = "" if ex.target == ex.label else f", explaining {ex.target} (p={ex.target_probability:.3f})"
    summary = f"  → {ex.label} (p={ex.probability:.3f}){target} · top: {top} · gap {ex.completeness_gap:+.4f}"
    console = Console(highlight=False)
    console.print(line, soft_wrap=True)
    console.print(Text(summary), soft_wrap=True)
    if not ex.converged():
        console.print(Text(f"  the completeness gap is large next to f(x) − f(baseline) = {ex.delta:+.4f}: "
                           f"run again with --steps {ex.steps * 4}.", style="yellow"), soft_wrap=True)
    if ex.truncated:
        console.print(Text("  the text was cut at the model's max length; the rest is not explained.", style="yellow"))


def register(app: typer.Typer) -> None:
    """Attach the trust commands to the main `tuneforge` app."""
    app.add_typer(data_app, name="data")
    app.command("baseline")(baseline)
    app.command("explain")(explain)

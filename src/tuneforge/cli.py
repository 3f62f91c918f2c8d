"""The `tuneforge` command: parses arguments and calls a recipe. User mistakes exit 2 with one line."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from tuneforge.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode="rich",
                  help="TuneForge: fine-tune, evaluate, predict, embed and export transformer encoders — offline, on CPU or GPU.")

SET_HELP = "Override any config key, e.g. --set train.epochs=3 (repeatable). See docs/config.md."
TEXT_HELP = "Column with the input text."
LABEL_HELP = "Column with the label (string, int, or a JSON list for multi-label)."


def _err(msg: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"[bold red]error:[/] {msg}", highlight=False, soft_wrap=True)


def _print_metrics(title: str, metrics: dict[str, dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    columns = {"accuracy": "accuracy", "macro_f1": "macro F1", "micro_f1": "micro F1", "macro_precision": "macro P",
               "macro_recall": "macro R", "loss": "loss", "samples": "rows"}
    table = Table(title=title)
    table.add_column("split")
    for label in columns.values():
        table.add_column(label, justify="right")
    for split, m in metrics.items():
        table.add_row(split, *[f"{m[c]:.4f}" if isinstance(m[c], float) else str(m[c]) for c in columns])
    Console(width=max(100, Console().width)).print(table)


@app.command()
def finetune(
    config: Optional[Path] = typer.Argument(None, help="YAML config (optional). Flags and --set override it."),
    train: Optional[str] = typer.Option(None, "--train", help="Training data: CSV, TSV, JSONL, Parquet or a `datasets` folder."),
    validation: Optional[str] = typer.Option(None, "--validation", help="Validation data. Split off train (stratified, seeded) when absent."),
    test: Optional[str] = typer.Option(None, "--test", help="Test data. Split off train when absent."),
    text_column: Optional[str] = typer.Option(None, "--text-column", help=TEXT_HELP),
    label_column: Optional[str] = typer.Option(None, "--label-column", help=LABEL_HELP),
    label_separator: Optional[str] = typer.Option(None, "--label-separator", help="Split string labels on this (e.g. '|') for multi-label."),
    model: Optional[str] = typer.Option(None, "--model", help="Alias (minilm-l6), local model folder, or hub id."),
    output: Optional[str] = typer.Option(None, "--output", "-o", help="Run folder (default runs/finetune)."),
    class_weights: Optional[str] = typer.Option(None, "--class-weights", help="none | balanced: loss weights for imbalanced classes."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest complete checkpoint in the run folder."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Delete an existing run folder first."),
    overrides: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Fine-tune a classifier (binary, multi-class or multi-label) and evaluate it on validation and test."""
    from tuneforge.config import FinetuneConfig, load_config
    from tuneforge.recipes.finetune import finetune as run

    if resume and config is None and output and (Path(output) / "config.yaml").is_file():
        config = Path(output) / "config.yaml"  # resume with the run's own resolved config
    base = {"output": output, "model": {"name": model},
            "data": {"train": train, "validation": validation, "test": test, "text_column": text_column,
                     "label_column": label_column, "label_separator": label_separator},
            "train": {"class_weights": class_weights}}
    cfg = load_config(config, FinetuneConfig, overrides, base)
    summary = run(cfg, resume=resume, overwrite=overwrite)
    if summary.get("report"):
        _print_metrics("TuneForge fine-tune", summary["metrics"])
        typer.echo(f"model:  {summary['final']}\nreport: {summary['report']}")


@app.command()
def evaluate(
    model: str = typer.Option(..., "--model", help="A fine-tuned model folder, e.g. runs/x/final."),
    data: str = typer.Option(..., "--data", help="Labelled data to evaluate on (CSV, TSV, JSONL, Parquet, datasets folder)."),
    output: str = typer.Option("eval", "--output", "-o", help="Folder for metrics.json and the report."),
    text_column: str = typer.Option("text", "--text-column", help=TEXT_HELP),
    label_column: str = typer.Option("label", "--label-column", help=LABEL_HELP),
    label_separator: Optional[str] = typer.Option(None, "--label-separator", help="Split string labels on this for multi-label."),
    batch_size: int = typer.Option(128, "--batch-size", help="Evaluation batch size."),
) -> None:
    """Accuracy, macro/micro precision, recall and F1, per-class report and confusion matrix, with a report."""
    from tuneforge.recipes.evaluate import evaluate as run

    result = run(model, data, output, text_column, label_column, batch_size, label_separator)
    _print_metrics("TuneForge evaluation", {Path(data).name: result["metrics"]})
    typer.echo(f"metrics: {result['metrics_file']}\nreport:  {result['report']}")


@app.command()
def predict(
    model: str = typer.Option(..., "--model", help="A fine-tuned model folder, e.g. runs/x/final."),
    input: str = typer.Option(..., "--input", help="Texts: CSV/TSV/JSONL/Parquet (with --text-column) or .txt, one per line."),
    output: str = typer.Option(..., "--output", "-o", help="JSON lines out: one {text, label, probabilities} per row."),
    text_column: str = typer.Option("text", "--text-column", help=TEXT_HELP),
    batch_size: int = typer.Option(64, "--batch-size", help="Prediction batch size."),
) -> None:
    """Predict labels and per-class probabilities for every row of a file."""
    from tuneforge.recipes.predict import predict_file

    n = predict_file(model, input, output, text_column, batch_size)
    typer.echo(f"wrote {n} predictions to {output}")


@app.command()
def embed(
    model: str = typer.Option("minilm-l6", "--model", help="Alias, model folder (any encoder or fine-tuned model), or hub id."),
    input: str = typer.Option(..., "--input", help="Texts: .txt (one per line) or a table with --text-column."),
    output: str = typer.Option(..., "--output", "-o", help="Pooled sentence vectors as .npy (N × hidden; N × 4·hidden for last4)."),
    pooling: str = typer.Option("mean", "--pooling", help="mean | cls | last4 (concatenated mean of the last four layers)."),
    text_column: str = typer.Option("text", "--text-column", help=TEXT_HELP),
    hidden_states: Optional[str] = typer.Option(None, "--hidden-states", help="Also save the last hidden state tensor (N × T × hidden) and mask as .npz."),
    batch_size: int = typer.Option(64, "--batch-size", help="Batch size."),
) -> None:
    """Extract hidden states and pooled sentence embeddings (feature extraction)."""
    from tuneforge.model.pooling import POOLINGS
    from tuneforge.recipes.predict import embed_file

    if pooling not in POOLINGS:
        raise UserError(f"--pooling {pooling}: use one of {', '.join(POOLINGS)}.")
    shape = embed_file(model, input, output, pooling, text_column, hidden_states, batch_size)
    typer.echo(f"wrote embeddings {tuple(shape)} to {output}")


@app.command()
def export(
    model: str = typer.Option(..., "--model", help="Model to export: a fine-tuned folder (runs/x/final → logits) or an encoder (alias or folder → last_hidden_state)."),
    output: str = typer.Option(..., "--output", "-o", help="Export folder, written atomically: model.onnx, tokenizer, config.json, tuneforge.json."),
    fmt: str = typer.Option("onnx", "--format", help="Export format: onnx."),
    quantize: str = typer.Option("none", "--quantize", help="none | int8 (dynamic int8 weights per channel, ~4x smaller; model.onnx is then the int8 graph)."),
    check_data: Optional[str] = typer.Option(None, "--check-data", help="Real texts for the parity check; labelled for a classifier (then the int8 accuracy drop is checked). Default: the bundled demo reviews."),
    text_column: str = typer.Option("text", "--text-column", help=TEXT_HELP),
    label_column: str = typer.Option("label", "--label-column", help=LABEL_HELP),
    label_separator: Optional[str] = typer.Option(None, "--label-separator", help="Split string labels on this for multi-label."),
    opset: int = typer.Option(18, "--opset", help="ONNX opset version (17 or newer)."),
    tolerance: float = typer.Option(1e-3, "--tolerance", help="Largest allowed |PyTorch - ONNX fp32| output difference; above it the export fails."),
    max_accuracy_drop: float = typer.Option(0.5, "--max-accuracy-drop", help="int8 with labelled --check-data: largest allowed accuracy drop, in points."),
) -> None:
    """Export to ONNX (optionally int8) with a parity check against PyTorch; `tuneforge.load` serves the folder."""
    from tuneforge.recipes.export import export as run

    result = run(model, output, fmt, quantize, check_data, text_column, label_column, label_separator, opset,
                 tolerance, max_accuracy_drop)
    kind = "int8" if result["quantization"] else "fp32"
    size = result["int8_bytes" if result["quantization"] else "fp32_bytes"] / 1e6
    typer.echo(f"exported: {Path(result['folder']) / result['file']} ({kind}, {size:.1f} MB, opset {result['opset']}, "
               f"output {result['output_name']})")
    parity = result["parity"]
    typer.echo(f"parity on {parity['texts']} texts ({parity['data']}):")
    for graph in ("fp32", "int8"):
        if graph in parity:
            typer.echo(f"  {graph}: " + ", ".join(f"{k} {v:.4g}" for k, v in parity[graph].items()))


@app.command()
def quickstart(
    output: str = typer.Option("runs/quickstart", "--output", "-o", help="Run folder."),
    overrides: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Fine-tune the embedded default model on the bundled demo reviews (EN + ZH, 3 labels), offline."""
    from tuneforge.recipes.quickstart import quickstart as run

    summary, examples = run(output, overrides)
    _print_metrics("TuneForge quickstart (demo reviews)", summary["metrics"])
    typer.echo(f"model:  {summary['final']}\nreport: {summary['report']}")
    for text, result in examples:
        probs = ", ".join(f"{k} {v:.2f}" for k, v in result["probabilities"].items())
        typer.echo(f"predict: {text!r} → {result['label']}  ({probs})")


def main() -> None:
    try:
        app(standalone_mode=False)
    except UserError as exc:
        _err(str(exc))
        sys.exit(2)
    except KeyboardInterrupt:
        _err("interrupted. Continue with the same command plus --resume.")
        sys.exit(130)
    except Exception as exc:  # click's own usage errors
        import click

        if isinstance(exc, click.exceptions.Exit):
            sys.exit(exc.exit_code)
        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(130)
        raise

"""The `tune` command (hyperparameter search over a fine-tune config), registered on the main app by cli.py."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

RANGE = ("Search {what}: a range LOW:HIGH (LOW:HIGH:log for a log scale; whole numbers search integers) or "
         "choices A,B,C.")


def tune(
    config: Path = typer.Argument(..., help="The base fine-tune YAML. Trial 0 runs it unchanged (the defaults); every other trial changes only the searched keys."),
    trials: int = typer.Option(20, "--trials", help="Finished trials (complete or pruned) the search should hold; with --resume, the ones already finished count."),
    space: Optional[str] = typer.Option(None, "--space", help="Space YAML: dotted config keys → {low, high[, log][, step]} or {choices: [...]}, e.g. train.learning_rate: {low: 1e-5, high: 1e-3, log: true}."),
    lr: Optional[str] = typer.Option(None, "--lr", help=RANGE.format(what="train.learning_rate") + " E.g. 1e-5:1e-3:log."),
    batch_size: Optional[str] = typer.Option(None, "--batch-size", help=RANGE.format(what="train.batch_size") + " E.g. 16,32."),
    epochs: Optional[str] = typer.Option(None, "--epochs", help=RANGE.format(what="train.epochs") + " E.g. 2:6."),
    warmup: Optional[str] = typer.Option(None, "--warmup", help=RANGE.format(what="train.warmup_ratio") + " E.g. 0:0.2."),
    weight_decay: Optional[str] = typer.Option(None, "--weight-decay", help=RANGE.format(what="train.weight_decay") + " E.g. 0:0.1."),
    lora_rank: Optional[str] = typer.Option(None, "--lora-rank", help=RANGE.format(what="lora.rank") + " E.g. 4,8,16 (sft with LoRA)."),
    output: str = typer.Option("runs/tune", "--output", "-o", help="Search folder: study.db, trial-NNNN/ (one run folder per trial), best.yaml, report/."),
    parallel: int = typer.Option(1, "--parallel", help="Trials at once. Local: at most the cores, each trial gets cores/parallel threads. Ray: at most this many at once on the cluster."),
    storage: Optional[str] = typer.Option(None, "--storage", help="Optuna storage URL (any SQLAlchemy database, e.g. postgresql://...). Default: sqlite:///OUTPUT/study.db."),
    study_name: Optional[str] = typer.Option(None, "--study-name", help="Study name in the storage (default: the output folder's name)."),
    seed: int = typer.Option(42, "--seed", help="Seed of the TPE sampler. The trials train with the base config's train.seed."),
    pruner: str = typer.Option("median", "--pruner", help="median: stop a trial whose best validation value so far is worse than the median of finished trials at the same evaluation | none."),
    prune_startup: int = typer.Option(5, "--prune-startup", help="Finished trials before any trial is pruned."),
    prune_warmup: int = typer.Option(1, "--prune-warmup", help="Evaluations a trial always gets before it can be pruned."),
    backend: str = typer.Option("local", "--backend", help="local: trials as child processes on this machine | ray: Ray Tune (a local Ray, or the cluster at --address)."),
    address: Optional[str] = typer.Option(None, "--address", help="ray: cluster address HOST:PORT (from `ray start --head`), ray://HOST:PORT or auto. Default: start a local Ray."),
    resume: bool = typer.Option(False, "--resume", help="Continue the search in OUTPUT (or --storage): finished trials are kept, interrupted ones run again."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Delete the search (folder and study) first."),
    overrides: list[str] = typer.Option([], "--set", help="Override a key of the base config for every trial, defaults included, e.g. --set train.seed=7."),
) -> None:
    """Search hyperparameters of a fine-tune with Optuna (TPE + median pruning; --backend ray for Ray Tune): each
    trial a normal run folder; writes best.yaml (a ready fine-tune config) and a report comparing the best trial with
    the defaults."""
    from tuneforge.config.loader import validate
    from tuneforge.recipes.tune import TuneSettings, tune as run

    flags = {"lr": lr, "batch_size": batch_size, "epochs": epochs, "warmup": warmup, "weight_decay": weight_decay,
             "lora_rank": lora_rank}
    settings = validate({"config": str(config), "overrides": overrides, "space": space, "flags": flags,
                         "trials": trials, "output": output, "storage": storage, "study_name": study_name,
                         "parallel": parallel, "seed": seed, "pruner": pruner, "prune_startup": prune_startup,
                         "prune_warmup": prune_warmup, "backend": backend, "address": address, "resume": resume,
                         "overwrite": overwrite}, TuneSettings, "tune")
    result = run(settings)
    counts = ", ".join(f"{v} {k}" for k, v in result.counts.items() if v)
    typer.echo(f"search: {counts or 'no trials'} · {result.seconds:.0f} s")
    typer.echo(result.headline)
    if result.best_yaml:
        typer.echo(f"best config: {result.best_yaml}  (train it: tuneforge finetune {result.best_yaml})")
    typer.echo(f"report: {result.report}")


def register(app: typer.Typer) -> None:
    """Attach `tune` to the main `tuneforge` app."""
    app.command("tune")(tune)

"""The settings of a search (`TuneSettings`, the `tuneforge tune` flags) and what its trials share (`Search`: the
base config, the space, the metric and its direction, threads), all checked by `prepare` before any trial starts."""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from tuneforge.config import FinetuneConfig
from tuneforge.config.loader import apply_overrides, load_config
from tuneforge.recipes.tune_space import Param, build_space, check_space
from tuneforge.recipes.tune_trial import finetune_command

STUDY_DB = "study.db"
DEFAULTS = "defaults"  # trial user attribute: this trial runs the base config unchanged


class TuneSettings(BaseModel):
    """The search itself (not the fine-tune: that is the base config). The CLI flags of `tuneforge tune`."""
    model_config = ConfigDict(extra="forbid")
    config: str = Field(description="The base fine-tune YAML every trial starts from.")
    overrides: list[str] = Field(default_factory=list, description="--set KEY=VALUE on the base config (all trials).")
    space: str | None = Field(None, description="Space YAML: dotted config keys → {low, high[, log][, step]} or {choices}.")
    flags: dict[str, str | None] = Field(default_factory=dict, description="Range flags: lr, batch_size, epochs, warmup, weight_decay, lora_rank.")
    trials: int = Field(20, ge=1, description="Finished trials (complete or pruned) the study should hold.")
    output: str = Field("runs/tune", description="Search folder: study.db, trial-NNNN/, best.yaml, report/.")
    storage: str | None = Field(None, description="Optuna storage URL. Default: sqlite:///<output>/study.db.")
    study_name: str | None = Field(None, description="Study name in the storage. Default: the output folder's name.")
    parallel: int = Field(1, ge=1, description="Trials at once (local: at most the cores; each gets cores/parallel threads).")
    seed: int = Field(42, description="Seed of the TPE sampler (the trials' own seed is the base config's train.seed).")
    pruner: Literal["median", "none"] = Field("median", description="Stop trials whose best validation value so far is worse than the median of finished trials at the same evaluation.")
    prune_startup: int = Field(5, ge=0, description="Finished trials before any pruning.")
    prune_warmup: int = Field(1, ge=0, description="Evaluations of a trial before it can be pruned.")
    backend: Literal["local", "ray"] = Field("local", description="local: child processes on this machine; ray: Ray Tune.")
    address: str | None = Field(None, description="ray: the cluster address (host:port, ray://host:port or auto). Default: a local Ray.")
    resume: bool = False
    overwrite: bool = False
    poll_seconds: float = Field(0.5, gt=0, description="How often the parent reads the trials' metrics.jsonl.")


@dataclass
class Search:
    """What every trial of one search shares."""
    settings: TuneSettings
    base: dict  # the base config as raw YAML data, --set applied
    params: list[Param]
    out: Path
    metric: str | None  # None: the trials' own eval.metric (classification auto: accuracy or micro_f1)
    direction: str  # maximize | minimize
    threads: int | None  # CPU threads per trial (None: leave it to the base config)
    parallel: int
    cwd: str  # the trials run where the search was started, so relative data paths mean the same
    command: Callable[[Path], list[str]] = finetune_command

    @property
    def storage_url(self) -> str:
        return self.settings.storage or f"sqlite:///{(self.out / STUDY_DB).resolve()}"

    @property
    def study_name(self) -> str:
        return self.settings.study_name or self.out.resolve().name


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def objective_metric(cfg: FinetuneConfig) -> tuple[str | None, str]:
    """The metric a search optimises, the one the run itself selects its best checkpoint by (eval.metric), and its
    direction (loss is minimised). Auto for a classifier is accuracy or micro_f1 by the labels, known only once a
    trial has read them: None, maximised either way."""
    metric = cfg.eval.metric
    if metric == "auto" and cfg.task in ("sft", "seq2seq"):
        metric = "loss"
    elif metric == "auto" and cfg.task == "translation":
        metric = "bleu" if cfg.eval.bleu_samples else "loss"
    elif metric == "auto":
        return None, "maximize"
    return metric, "minimize" if metric == "loss" else "maximize"


def prepare(settings: TuneSettings, command: Callable[[Path], list[str]] = finetune_command) -> Search:
    """Check everything the user gave before any trial starts: the base config, the space, the numbers."""
    cfg = load_config(settings.config, FinetuneConfig, settings.overrides)
    base = apply_overrides(yaml.safe_load(Path(settings.config).read_text(encoding="utf-8")) or {},
                           settings.overrides, FinetuneConfig)
    params = build_space(settings.space, settings.flags)
    check_space(params, base, settings.space or "the search flags")
    metric, direction = objective_metric(cfg)
    parallel, threads = settings.parallel, None
    if settings.backend == "local":
        cores = len(os.sched_getaffinity(0))
        if parallel > cores:
            say(f"--parallel {parallel}: this machine has {cores} cores; running {cores} trials at once.")
            parallel = cores
        threads = max(1, cores // parallel)
    return Search(settings, base, params, Path(settings.output), metric, direction, threads, parallel,
                  os.getcwd(), command)

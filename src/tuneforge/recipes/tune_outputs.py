"""What a search leaves besides its trial folders: best.yaml (the base config with the best trial's values, a ready
`tuneforge finetune` config) and the report (evaluate/tune_report.py), built from the study as plain trial rows."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from tuneforge.config import FinetuneConfig
from tuneforge.config.loader import load_config
from tuneforge.evaluate.tune_report import headline, write_tune_report
from tuneforge.model.artifact import atomic_write_text
from tuneforge.recipes.tune_settings import DEFAULTS, Search
from tuneforge.recipes.tune_space import with_values
from tuneforge.recipes.tune_trial import trial_folder

BEST_YAML = "best.yaml"


@dataclass
class TuneResult:
    output: Path
    best_yaml: Path | None
    report: Path
    metric: str
    best: dict | None  # trial rows (see trial_rows)
    defaults: dict | None
    counts: dict[str, int]
    seconds: float
    headline: str


def _summary(folder: Path) -> dict | None:
    path = folder / "summary.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _resolved(folder: Path, names: list[str]) -> dict:
    """The values a trial's run actually used for the searched keys (auto ones resolved), from its config.yaml."""
    path = folder / "config.yaml"
    if not path.is_file():
        return {}
    node, out = yaml.safe_load(path.read_text(encoding="utf-8")) or {}, {}
    for name in names:
        value = node
        for part in name.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None:
            out[name] = value
    return out


def trial_rows(study, out: Path, names: list[str]) -> list[dict]:
    """One plain row per trial: `params` are what Optuna drew (none for the defaults), `values` what the run used
    for the searched keys `names` (the defaults' auto values resolved). A trial Optuna holds as complete whose run
    never wrote summary.json was stopped early by Ray's scheduler (Ray tells the study the last value it saw): its
    state is `stopped`."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        folder = trial_folder(out, t.number)
        summary = _summary(folder)
        state = t.state.name.lower()
        if state == "complete" and summary is None:
            state = "stopped"
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() \
            if t.datetime_complete and t.datetime_start else None
        rows.append({"number": t.number, "state": state, "value": t.value, "params": dict(t.params),
                     "values": {**_resolved(folder, names), **t.params},
                     "defaults": bool(t.user_attrs.get(DEFAULTS)),
                     "intermediate": sorted(t.intermediate_values.items()),
                     "seconds": seconds, "folder": str(folder),
                     "test": ((summary or {}).get("metrics") or {}).get("test")})
    return rows


def _run_metric(rows: list[dict]) -> str:
    """The eval.metric the trials' runs resolved (Ray's workers cannot write it into the study)."""
    for row in rows:
        path = Path(row["folder"]) / "config.yaml"
        if path.is_file():
            return (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("eval", {}).get("metric", "metric")
    return "metric"


def pick(rows: list[dict], direction: str) -> tuple[dict | None, dict | None]:
    """(best finished trial, the defaults' finished trial); a tie goes to the earlier trial."""
    done = [r for r in rows if r["state"] == "complete" and r["value"] is not None]
    sign = -1 if direction == "maximize" else 1
    best = min(done, key=lambda r: (sign * r["value"], r["number"]), default=None)
    defaults = next((r for r in reversed(done) if r["defaults"]), None)
    return best, defaults


def importances(study, names: list[str], seed: int) -> dict[str, float] | None:
    """fANOVA importances over the finished trials; None when they cannot tell (fewer than two, or one value)."""
    import optuna

    try:
        found = optuna.importance.get_param_importances(
            study, params=names, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=seed))
    except (ValueError, RuntimeError, ZeroDivisionError):
        return None
    return {k: float(v) for k, v in found.items()} or None


def write_best_yaml(search: Search, best: dict, metric: str, defaults: dict | None) -> Path:
    """The base config with the best trial's values and a fresh output folder, checked by load_config."""
    raw = with_values(search.base, best["params"])
    raw["output"] = str(search.out / "best")
    path = search.out / BEST_YAML
    base = f"; the defaults (trial {defaults['number']}): {defaults['value']:.4f}" if defaults else ""
    header = (f"# tuneforge finetune {path}\n# Best trial {best['number']} of the search '{search.study_name}': "
              f"validation {metric} {best['value']:.4f}{base}.\n")
    atomic_write_text(path, header + yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))
    load_config(path, FinetuneConfig)
    return path


def _facts(search: Search, rows: list[dict], seconds: float) -> list[tuple[str, str]]:
    s = search.settings
    counts = {k: sum(r["state"] == k for r in rows) for k in ("complete", "pruned", "stopped", "fail", "running")}
    pruner = (f"median (after {s.prune_startup} finished trials and {s.prune_warmup} evaluations of a trial)"
              if s.pruner == "median" else "none")
    where = "Ray Tune" + (f" at {s.address}" if s.address else " (local)") if s.backend == "ray" else "this machine"
    threads = f", {search.threads} threads each" if search.threads else ""
    return [("base config", s.config + "".join(f" --set {o}" for o in s.overrides)),
            ("trials", ", ".join(f"{v} {k}" for k, v in counts.items() if v) or "none"),
            ("sampler", f"TPE (seed {s.seed})"), ("pruner", pruner),
            ("run on", f"{where}, {search.parallel} at a time{threads}"),
            ("study", f"'{search.study_name}' in {search.storage_url}"),
            ("wall time (this call)", f"{seconds:.0f} s"),
            ("trial time (all trials)", f"{sum(r['seconds'] or 0 for r in rows):.0f} s")]


def write_outputs(search: Search, study, seconds: float) -> TuneResult:
    rows = trial_rows(study, search.out, [p.name for p in search.params])
    metric = study.user_attrs.get("metric") or search.metric or _run_metric(rows)
    best, defaults = pick(rows, search.direction)
    best_yaml = write_best_yaml(search, best, metric, defaults) if best else None
    notes = [f"Trial 0 is the base config unchanged (the defaults); every trial trains with its seed "
             f"(train.seed {search.base.get('train', {}).get('seed', 42)}).",
             "A trial's value is its best validation value; the run keeps that checkpoint as final/.",
             "Pruning compares a trial's best value so far with the median of finished trials at the same "
             "evaluation (its 1st, 2nd ... validation record)."]
    if best_yaml:
        notes.append(f"Train the best config: tuneforge finetune {best_yaml}")
    view = {"title": f"TuneForge search: {search.study_name}", "metric": metric, "direction": search.direction,
            "trials": rows, "best": best, "defaults": defaults,
            "importances": importances(study, [p.name for p in search.params], search.settings.seed),
            "axes": [(p.name, p.log) for p in search.params], "space": [(p.name, p.describe()) for p in search.params],
            "facts": _facts(search, rows, seconds), "notes": notes}
    _, html_path = write_tune_report(search.out / "report", view)
    counts = {k: sum(r["state"] == k for r in rows) for k in ("complete", "pruned", "stopped", "fail")}
    return TuneResult(search.out, best_yaml, html_path, metric, best, defaults, counts, seconds, headline(view))

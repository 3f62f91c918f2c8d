"""`tuneforge pipeline`: pretrain → fine-tune from the pretrained final/ → evaluate, in one folder.

Each stage writes its own run folder inside the pipeline folder; a finished stage (summary.json and final/)
is skipped on --resume, and an interrupted one resumes from its checkpoint.
"""
from __future__ import annotations

import json
from pathlib import Path

from tuneforge.config import PipelineConfig, to_yaml
from tuneforge.model.artifact import atomic_write_text, claim_folder
from tuneforge.model.manifest import RunSummary

STAGES = ("pretrain", "finetune", "evaluate")


def _prepare(out: Path, resume: bool, overwrite: bool) -> None:
    ours = (out / "pipeline.yaml").is_file()
    claim_folder(out, "pipeline", ours, busy=out.is_dir() and any(out.iterdir()), resume=resume, overwrite=overwrite)
    out.mkdir(parents=True, exist_ok=True)


def _finished(run_dir: Path) -> RunSummary | None:
    summary = run_dir / "summary.json"
    if summary.is_file() and (run_dir / "final").is_dir():
        return RunSummary.model_validate_json(summary.read_text(encoding="utf-8"))
    return None


def run_pipeline(cfg: PipelineConfig, resume: bool = False, overwrite: bool = False) -> dict:
    from tuneforge.recipes.evaluate import evaluate
    from tuneforge.recipes.finetune import finetune
    from tuneforge.recipes.pretrain import pretrain

    out = Path(cfg.output)
    _prepare(out, resume, overwrite)
    pre = cfg.pretrain.model_copy(update={"output": str(out / "pretrain")}, deep=True)
    ft = cfg.finetune.model_copy(update={"output": str(out / "finetune")}, deep=True)
    ft.model.name = str(out / "pretrain" / "final")  # the whole point: fine-tune what was just pretrained
    atomic_write_text(out / "pipeline.yaml", to_yaml(cfg.model_copy(update={"pretrain": pre, "finetune": ft})))

    result: dict = {"output": str(out), "evaluate": {}}
    for name, stage_cfg, run in (("pretrain", pre, pretrain), ("finetune", ft, finetune)):
        run_dir = Path(stage_cfg.output)
        done = _finished(run_dir) if resume else None
        result[name] = done or run(stage_cfg, resume=resume and (run_dir / "checkpoints").is_dir())
    model = str(out / "finetune" / "final")
    for data in cfg.evaluate:
        target = out / "evaluate" / Path(data).stem
        result["evaluate"][Path(data).stem] = evaluate(model, data, str(target), ft.data.text_column,
                                                       ft.data.label_column, ft.eval.batch_size, ft.data.label_separator)
    atomic_write_text(out / "summary.json", json.dumps(
        {"pretrain": result["pretrain"].model_dump(include={"metrics", "initial_metrics", "steps", "tokens_per_s"}),
         "finetune": result["finetune"].model_dump(include={"metrics", "steps", "best_step"}),
         "evaluate": {k: v["metrics"] for k, v in result["evaluate"].items()}}, indent=2, default=str))
    return result

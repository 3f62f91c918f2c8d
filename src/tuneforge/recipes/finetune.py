"""Fine-tune a text classifier: data → coverage check → model → auto settings → train → evaluate → calibrate →
final/ (with its model card) and the report (with the TF-IDF baseline beside the transformer)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from accelerate.utils import set_seed

from tuneforge.config import FinetuneConfig, to_yaml
from tuneforge.data.coverage import measure_coverage
from tuneforge.data.encode import LengthGroupedBatches, encode_texts
from tuneforge.data.labels import LabelSpace
from tuneforge.data.quality import check_splits
from tuneforge.data.sources import file_sha256
from tuneforge.data.splits import load_splits, split_record
from tuneforge.evaluate.analysis import (
    analyse,
    baseline_scalars,
    calibration_scalars,
    label_counts,
)
from tuneforge.evaluate.baseline import baseline_unavailable, run_baseline
from tuneforge.evaluate.calibration import fit_temperature
from tuneforge.evaluate.model_card import model_card
from tuneforge.evaluate.report import write_report
from tuneforge.evaluate.stream import evaluate_classifier
from tuneforge.model.artifact import (
    atomic_write_text,
    package_versions,
    save_model_folder,
)
from tuneforge.model.build import load_classifier, load_tokenizer
from tuneforge.model.dropout import use_fast_dropout
from tuneforge.model.vocab import extend_vocabulary
from tuneforge.recipes.run_dir import prepare_run_dir, resume_state, say
from tuneforge.train.defaults import resolve_auto, total_steps
from tuneforge.train.loop import LoopConfig, LoopState, fit
from tuneforge.train.objectives import balanced_class_weights, make_objective
from tuneforge.train.optim import ProgressSchedule, build_optimizer
from tuneforge.train.progress import MetricsLog
from tuneforge.train.runtime import make_accelerator, pin_precision, world_size
from tuneforge.train.sparse_rows import row_table


def finetune(cfg: FinetuneConfig, resume: bool = False, overwrite: bool = False) -> dict:
    """Run a fine-tune end to end and return a summary (metrics, paths)."""
    accelerator = make_accelerator(cfg.runtime)
    run_dir = Path(cfg.output)
    if accelerator.is_main_process:
        prepare_run_dir(run_dir, resume, overwrite)
        run_dir.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()

    splits, labels, targets = _load_data(cfg)
    data_check = _quick_check(cfg, splits, accelerator)
    tokenizer, model, coverage, warning, added = _build_model(cfg, splits, labels, accelerator)
    use_fast_dropout(model)  # the same dropout distribution from a cheaper random source on CPU
    n_train = len(splits["train"].texts)
    cfg, why = resolve_auto(cfg, n_train, model.config.hidden_size, bool(added), world_size())
    cfg, chosen = pin_precision(cfg, accelerator)
    for key, reason in {**why, **chosen}.items():
        say(accelerator, f"auto: {key} = {reason}")
    encoded = {name: encode_texts(tokenizer, s.texts, cfg.data.max_length, targets[name]) for name, s in splits.items()}
    if accelerator.is_main_process:
        atomic_write_text(run_dir / "config.yaml", to_yaml(cfg))
        atomic_write_text(run_dir / "split.json", json.dumps(split_record(splits)))

    state, model, evaluate = _train(cfg, accelerator, model, labels, encoded, targets, tokenizer.pad_token_id or 0,
                                    run_dir, resume)

    # Final evaluation on the best weights with per-row outputs, temperature fitted on validation, then the
    # self-describing model folder (temperature in config.json, model card) and the report.
    # keep_fp32_wrapper=False: Accelerate wraps a mixed-precision model's forward in autocast; the final
    # evaluation runs the weights in fp32, as everything that loads final/ does.
    final_model = accelerator.unwrap_model(model, keep_fp32_wrapper=False)
    results, rows, temperature, why = _final_evaluation(cfg, evaluate, final_model, labels, encoded)
    checksum = torch.tensor([sum(p.detach().double().sum().item() for p in model.parameters())], device=accelerator.device)
    summary = {"run_dir": str(run_dir), "final": str(run_dir / "final"), "metrics": results,
               "steps": state.step, "best_step": state.best_step, "stop_reason": state.stop_reason,
               "train_seconds": round(state.train_seconds, 2),
               "train_samples_per_s": round(state.samples / max(state.train_seconds, 1e-9), 2),
               "vocab_added": len(added), "coverage": coverage.summary(), "warning": warning, "data_check": data_check}
    checksums = accelerator.gather(checksum).tolist()
    if accelerator.is_main_process:
        _write_outputs(accelerator.unwrap_model(model), tokenizer, cfg, splits, labels, summary, checksums, run_dir,
                       _analysis(cfg, splits, labels, rows, (temperature, why), summary))
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return summary


def _train(cfg: FinetuneConfig, accelerator, model, labels: LabelSpace, encoded: dict, targets: dict, pad_id: int,
           run_dir: Path, resume: bool):
    """Optimizer, schedule, objective and the training loop (resumed from the run folder's newest checkpoint with
    `resume`); returns the loop's final state, the model as Accelerate prepared it, and the
    evaluate(model, split, details) the final evaluation uses."""
    # CPU, one process: the word embedding trains as the rows the training texts use (same result, less work).
    table = None
    if accelerator.device.type == "cpu" and accelerator.num_processes == 1:
        table = row_table(model, [pad_id, *(i for row in encoded["train"].input_ids for i in row)])
    optimizer = build_optimizer(model, cfg.train.learning_rate, cfg.train.weight_decay, table)
    scheduler = ProgressSchedule(optimizer, cfg.train.warmup_ratio)
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler)
    weights = balanced_class_weights(labels.class_counts(targets["train"]), cfg.train.class_weights)
    objective = make_objective("classification", multi_label=labels.multi_label, weights=weights)

    def evaluate(m, split="validation", details=False, autocast=accelerator.autocast):
        return evaluate_classifier(accelerator.unwrap_model(m), encoded[split], labels.names, labels.multi_label,
                                   batch_size=cfg.eval.batch_size, pad_id=pad_id, device=accelerator.device,
                                   rank=accelerator.process_index, world=accelerator.num_processes,
                                   reduce=lambda t: accelerator.reduce(t, "sum"), autocast=autocast, details=details)

    state = resume_state(accelerator, run_dir) if resume else LoopState()
    MetricsLog(run_dir / "metrics.jsonl", accelerator.is_main_process).truncate_after(state.step)
    try:
        state = fit(accelerator, model, optimizer, scheduler, LengthGroupedBatches(encoded["train"], pad_id), objective,
                    evaluate, _loop_config(cfg, run_dir, total_steps(cfg, len(encoded["train"].input_ids))), state)
    finally:
        if table is not None:
            table.release()
    return state, model, evaluate


def _final_evaluation(cfg: FinetuneConfig, evaluate, model, labels: LabelSpace, encoded: dict):
    """Metrics and per-row outputs on validation and test, in fp32; the temperature, also set on `model.config`
    (the unwrapped model), or None and why not."""
    results, rows = {}, {}
    for name in ("validation", "test"):
        if name in encoded:
            # fp32 (no autocast; `model` comes without Accelerate's autocast wrapper), as `predict`, `evaluate`
            # and `tuneforge.load` run the saved weights: the reported numbers reproduce.
            results[name], rows[name] = evaluate(model, name, details=True, autocast=None)
    val = rows.get("validation")
    temperature, why = None, "eval.calibrate is off"
    if hasattr(model.config, "tuneforge_temperature"):
        del model.config.tuneforge_temperature  # one inherited from the base model does not fit these weights
    if cfg.eval.calibrate and not labels.multi_label and val is not None:
        if len(val) and (val.pred != val.true).any():
            temperature, why = fit_temperature(val.logits, val.true), None
            model.config.tuneforge_temperature = temperature  # saved in config.json; predict() divides logits by it
        else:
            # Without a single mistake the NLL falls forever as T → 0: any fitted T would be the search bound.
            why = "the validation set has no mistakes, so a temperature cannot be fitted on it"
    return results, rows, temperature, why


def _analysis(cfg: FinetuneConfig, splits, labels: LabelSpace, rows: dict, fitted: tuple[float | None, str | None],
              summary: dict) -> dict:
    """Report sections for the report split (test, else validation): CI, calibration, worst errors, baseline."""
    split = "test" if "test" in summary["metrics"] else "validation"
    baseline = None
    if cfg.eval.baseline and labels.multi_label:
        baseline = baseline_unavailable("the TF-IDF baseline covers single-label tasks only; this one is multi-label.")
    elif cfg.eval.baseline:
        baseline = run_baseline(splits["train"].texts, labels.encode(splits["train"].labels).tolist(),
                                splits[split].texts, labels.encode(splits[split].labels).tolist(), labels.names,
                                seed=cfg.train.seed)
    temperature, why = fitted
    fitted_on = "validation" if split != "validation" else "validation (the same rows it is measured on)"
    out = analyse(rows.get(split), splits[split].texts, labels.names, temperature=temperature or 1.0,
                  fitted_on=fitted_on if temperature else "none", note=why,
                  bootstrap_samples=cfg.eval.bootstrap_samples, seed=cfg.train.seed,
                  row_numbers=splits[split].rows, baseline=baseline)
    summary["calibration"] = calibration_scalars(out["calibration"])
    summary["baseline"] = baseline_scalars(baseline)
    summary["ci"] = out["ci"]
    return {**out, "split": split}


def _quick_check(cfg: FinetuneConfig, splits, accelerator) -> dict | None:
    """Exact duplicates, label conflicts and leakage into validation/test: the model-free checks that take
    seconds (near duplicates and suspect labels are left to `tuneforge data check`)."""
    if not cfg.data.check:
        return None
    found = check_splits({n: (s.texts, [json.dumps(x) if isinstance(x, list) else x for x in s.labels])
                          for n, s in splits.items()}, near=False)
    problems = {k: found["problems"][k] for k in ("duplicates", "conflicts", "leakage")}
    if any(problems.values()):
        say(accelerator, "data check: " + ", ".join(f"{k} {v}" for k, v in problems.items()) +
            " (rows; `tuneforge data check` lists them)")
    return problems


def _notes(splits, summary: dict) -> list[str]:
    notes = [summary["warning"]] if summary["warning"] else []
    if summary["vocab_added"]:
        notes.append(f"{summary['vocab_added']} tokens were added to the vocabulary for this data.")
    check = summary.get("data_check")
    if check and any(check.values()):
        notes.append(f"Data check: {check['duplicates']} duplicate rows, {check['conflicts']} texts with conflicting "
                     f"labels, {check['leakage']} validation/test texts also in train. Run `tuneforge data check` for "
                     "the rows, near duplicates and suspect labels.")
    for name, s in splits.items():
        if s.pii:
            found = ", ".join(f"{k} {v}" for k, v in s.pii.items() if v) or "none found"
            notes.append(f"Personal data redacted in {name} ({s.source}): {found}.")
    return notes


def _load_data(cfg: FinetuneConfig):
    """Splits, the label space (from train) and the encoded targets; unseen labels are user errors."""
    splits = load_splits(cfg.data)
    labels = LabelSpace.from_labels(splits["train"].labels, cfg.data.multi_label)
    cfg.data.multi_label = labels.multi_label
    targets = {name: labels.encode(s.labels, s.source) for name, s in splits.items()}
    return splits, labels, targets


def _build_model(cfg: FinetuneConfig, splits, labels: LabelSpace, accelerator):
    """Tokenizer coverage check, then the model — with an extended vocabulary when the tokenizer misses the script."""
    tokenizer = load_tokenizer(cfg.model.name)
    coverage = measure_coverage(tokenizer, splits["train"].texts)
    warning = coverage.warning(cfg.model.name, cfg.model.unk_threshold)
    if warning:
        say(accelerator, f"warning: {warning}")
    set_seed(cfg.train.seed)  # the fresh head's init is part of the science
    model = load_classifier(cfg.model.name, labels)
    extend = cfg.model.extend_vocab == "always" or (cfg.model.extend_vocab == "auto" and warning is not None)
    added = extend_vocabulary(tokenizer, model, coverage.missing, cfg.model.max_new_tokens) if extend else []
    if added:
        after = measure_coverage(tokenizer, splits["train"].texts)
        say(accelerator, f"vocabulary: added {len(added)} tokens; [UNK] rate {coverage.unk_rate:.1%} → {after.unk_rate:.1%}")
    return tokenizer, model, coverage, warning, added


def _loop_config(cfg: FinetuneConfig, run_dir: Path, steps: int) -> LoopConfig:
    t = cfg.train
    return LoopConfig(run_dir=run_dir, total_steps=steps, batch_size=t.batch_size, grad_accum=t.grad_accum_steps,
                      max_grad_norm=t.max_grad_norm, eval_every=cfg.eval.every_steps, metric=cfg.eval.metric,
                      patience=t.early_stopping_patience, keep_checkpoints=cfg.runtime.keep_checkpoints,
                      budget_seconds=t.budget_minutes * 60 if t.budget_minutes else None,
                      log_every=cfg.runtime.log_every_steps, seed=t.seed, progress=cfg.runtime.progress)


def _manifest(cfg: FinetuneConfig, config_text: str, splits, labels: LabelSpace, summary: dict,
              checksums: list[float]) -> dict:
    manifest = {
        "task": "classification", "labels": list(labels.names), "multi_label": labels.multi_label,
        "max_length": cfg.data.max_length, "base_model": cfg.model.name,
        "config_sha256": hashlib.sha256(config_text.encode()).hexdigest(),
        "data": {n: {"source": s.source, "rows": len(s.texts),
                     "sha256": file_sha256(s.source) if Path(s.source).exists() else None} for n, s in splits.items()},
        "label_counts": {"train": label_counts(labels.names, labels.encode(splits["train"].labels))},
        "metrics": {split: {k: v for k, v in m.items() if k != "per_class"} for split, m in summary["metrics"].items()},
        "training": {k: summary[k] for k in ("steps", "best_step", "stop_reason", "train_seconds", "train_samples_per_s")},
        "coverage": summary["coverage"], "vocab_added": summary["vocab_added"],
        "rank_weight_checksums": checksums,
    }
    calibration = summary.get("calibration")
    if calibration:
        manifest["calibration"] = calibration
        if calibration["fitted_on"] != "none":
            manifest["temperature"] = calibration["temperature"]  # the ONNX predictor falls back to it
    for key in ("ci", "baseline"):
        if summary.get(key):
            manifest[key] = summary[key]
    return manifest


def _write_outputs(model, tokenizer, cfg: FinetuneConfig, splits, labels: LabelSpace, summary: dict,
                   checksums: list[float], run_dir: Path, analysis: dict) -> None:
    config_text = to_yaml(cfg)
    manifest = _manifest(cfg, config_text, splits, labels, summary, checksums)
    split, notes = analysis["split"], _notes(splits, summary)
    metrics = summary["metrics"][split]
    card = model_card({**manifest, "versions": package_versions()}, metrics, split=split, config_yaml=config_text,
                      ci=analysis["ci"], calibration=analysis["calibration"], baseline=analysis["baseline"],
                      train_seconds=summary["train_seconds"], notes=notes)
    log = (run_dir / "metrics.jsonl").read_text(encoding="utf-8") if (run_dir / "metrics.jsonl").exists() else ""
    save_model_folder(model, tokenizer, run_dir / "final", manifest,
                      extra_files={"metrics.jsonl": log, "training_config.yaml": config_text, "README.md": card})
    history = [json.loads(x) for x in log.splitlines() if x.strip()]
    summary["report"] = str(write_report(
        run_dir / "report", metrics, labels.names, history, title=f"TuneForge fine-tune — {split} set", notes=notes,
        ci=analysis["ci"], calibration=analysis["calibration"], errors=analysis["errors"],
        baseline=analysis["baseline"], train_seconds=summary["train_seconds"], split=f"the {split} set"))
    summary["report_split"] = split
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2, ensure_ascii=False))

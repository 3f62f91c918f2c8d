"""What an SFT run leaves behind: greedy answers to held-out prompts scored against the references, the manifest,
final/ (the whole model; or the LoRA adapter naming its base; or, with lora.merge, the merged plain model), the
model card and the report."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tuneforge.data.sft import prompt_and_reference
from tuneforge.data.sources import file_sha256
from tuneforge.evaluate.sft_answers import generate_answers, pick_chats, rows_json
from tuneforge.evaluate.sft_card import sft_model_card
from tuneforge.evaluate.sft_report import write_sft_report
from tuneforge.evaluate.text_metrics import auto_labels
from tuneforge.model.artifact import atomic_write_text
from tuneforge.model.lora import ADAPTER_CONFIG, merge_lora
from tuneforge.model.manifest import Manifest, RunSummary, package_versions


@dataclass
class Scores:
    split: str  # the report split: test when there is one, else validation
    metrics: dict  # exact_match, rouge_l, generated (+ accuracy, off_label with a label set)
    answers: list[dict]  # rows of the side-by-side table
    labels: list[str] | None


def final_scores(cfg, model, tokenizer, splits, max_new_tokens: int) -> Scores:
    """Greedy answers to up to eval.generate_samples prompts of the report split (main process)."""
    split = "test" if "test" in splits else "validation"
    labels = cfg.eval.labels or auto_labels([prompt_and_reference(tokenizer, c.messages)[1]
                                             for c in splits["train"].chats])
    chats = pick_chats(splits[split].chats, cfg.eval.generate_samples, cfg.train.seed)
    metrics, rows = generate_answers(model, tokenizer, chats, max_new_tokens, labels,
                                     batch_size=min(16, cfg.eval.batch_size))
    return Scores(split, metrics, rows_json(rows), labels)


def _adapter_record(cfg, model) -> dict | None:
    if not cfg.lora.enabled:
        return None
    config = model.peft_config["default"]
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"base": cfg.model.name, "rank": cfg.lora.rank, "alpha": cfg.lora.alpha, "dropout": cfg.lora.dropout,
            "targets": sorted(config.target_modules) if not isinstance(config.target_modules, str)
            else [config.target_modules], "merged": cfg.lora.merge, "trainable_parameters": trainable}


def _manifest(session, splits, summary: RunSummary, fmt: str, adapter: dict | None) -> Manifest:
    cfg = session.cfg
    return session.manifest(
        "sft", family="causal", objective="sft", chat_format=fmt, adapter=adapter, base_model=cfg.model.name,
        max_length=cfg.data.max_length,
        data={n: {"source": s.source, "rows": len(s.chats),
                  "sha256": file_sha256(s.source) if Path(s.source).exists() else None} for n, s in splits.items()},
        metrics=summary.metrics,
        training={"steps": summary.steps, "best_step": summary.best_step, "stop_reason": summary.stop_reason,
                  "tokens": summary.tokens, "train_seconds": summary.train_seconds,
                  "tokens_per_s": summary.tokens_per_s, "packing": cfg.data.packing})


def _save_final(session, model, tokenizer, manifest: Manifest, card: str) -> None:
    """final/: a LoRA adapter (naming its base as the user wrote it), or a plain model (merged when asked)."""
    cfg = session.cfg
    if cfg.lora.enabled and cfg.lora.merge:
        model = merge_lora(model)
    session.save_final(model, tokenizer, manifest, extra_files={"README.md": card})
    path = session.run_dir / "final" / ADAPTER_CONFIG
    if cfg.lora.enabled and not cfg.lora.merge and path.is_file():
        # peft writes the resolved cache folder; the name the user gave (an alias resolves on any machine) travels.
        base = cfg.model.name if not Path(cfg.model.name).exists() else str(Path(cfg.model.name).resolve())
        config = json.loads(path.read_text(encoding="utf-8"))
        atomic_write_text(path, json.dumps({**config, "base_model_name_or_path": base}, indent=2))


def _notes(data, fmt: str, scores: Scores) -> list[str]:
    notes = []
    for name, batches in data.items():
        enc = batches.data
        if enc.truncated or enc.dropped:
            notes.append(f"{name}: {enc.truncated} examples were cut at data.max_length; {enc.dropped} were left out "
                         "(no answer token before the cut).")
    if fmt == "plain":
        notes.append("The base tokenizer had no chat template: prompts were written as 'prompt\\nresponse<eos>'.")
    if scores.labels:
        notes.append(f"Label accuracy reads one of {len(scores.labels)} labels ({', '.join(scores.labels[:10])}"
                     f"{' ...' if len(scores.labels) > 10 else ''}) from each answer: the label it equals, else the "
                     "only one it starts with; answers naming none count as wrong (off_label).")
    return notes


def _facts(cfg, summary: RunSummary, data, adapter: dict | None, max_new: int) -> list[tuple[str, str]]:
    train = data["train"]
    tuning = "full fine-tuning" if adapter is None else (
        f"LoRA rank {adapter['rank']}, alpha {adapter['alpha']:g}, dropout {adapter['dropout']:g} on "
        f"{', '.join(adapter['targets'])}; {adapter['trainable_parameters']:,} trainable parameters"
        + (" (merged into final/)" if adapter["merged"] else ""))
    return [("base model", cfg.model.name), ("tuning", tuning),
            ("training data", f"{len(train.data)} examples in {len(train)} rows "
                              f"({'packed' if train.packed else 'one per row'}), max {cfg.data.max_length} tokens"),
            ("optimizer steps", f"{summary.steps} (best {summary.best_step}, stopped by {summary.stop_reason})"),
            ("training tokens", f"{summary.tokens:,} at {summary.tokens_per_s:,.0f} tokens/s"),
            ("train time", f"{summary.train_seconds / 60:.1f} min"), ("precision", cfg.runtime.precision),
            ("generation", f"greedy, at most {max_new} new tokens")]


def write_sft_outputs(session, model, tokenizer, splits, data, summary: RunSummary, scores: Scores, fmt: str,
                      max_new: int) -> RunSummary:
    """Scores into the summary, then final/ (with its model card) and report/; returns the summary with paths."""
    cfg = session.cfg
    metrics = {n: dict(m) for n, m in summary.metrics.items()}
    metrics[scores.split].update(scores.metrics)
    summary = summary.model_copy(update={"metrics": metrics, "report_split": scores.split})
    adapter = _adapter_record(cfg, model)
    manifest = _manifest(session, splits, summary, fmt, adapter)
    notes = _notes(data, fmt, scores)
    card = sft_model_card(manifest.model_copy(update={"versions": package_versions()}), metrics[scores.split],
                          scores.split, session.config_yaml(), notes)
    _save_final(session, model, tokenizer, manifest, card)
    report = write_sft_report(session.run_dir / "report", f"TuneForge SFT — {cfg.model.name}", metrics, scores.split,
                              scores.answers, _facts(cfg, summary, data, adapter, max_new), session.history(), notes,
                              generation={"greedy": True, "max_new_tokens": max_new, "labels": scores.labels})
    return summary.model_copy(update={"report": str(report)})

"""What a translation/seq2seq run leaves behind (main process): beam-search translations of validation and test,
scored with sacreBLEU (BLEU and chrF with bootstrap intervals and signatures) against the raw references, the
hypotheses as files, the manifest, final/ (model, tokenizer, generation settings, model card) and the report."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from tuneforge.data.sources import file_sha256
from tuneforge.evaluate.translation import bleu_chrf, scored_examples
from tuneforge.evaluate.translation_card import translation_model_card
from tuneforge.evaluate.translation_report import write_translation_report
from tuneforge.generate.beam import BeamSettings
from tuneforge.generate.translate import Translator
from tuneforge.model.artifact import atomic_write_text
from tuneforge.model.manifest import RunSummary, package_versions

TRANSLATIONS_DIR = "translations"  # <split>.txt: one hypothesis per line, in the order of the split's pairs


def decoding_settings(cfg) -> BeamSettings:
    e = cfg.eval
    return BeamSettings(beams=e.beams, length_penalty=e.length_penalty, max_new_tokens=e.max_new_tokens,
                        no_repeat_ngram=e.no_repeat_ngram)


def translate_splits(cfg, model, tokenizer, splits, session) -> dict[str, list[str]]:
    """Beam-search translations of validation and test (every pair; the source cut at data.max_length)."""
    settings = decoding_settings(cfg)
    translator = Translator(model, tokenizer, max_source_length=cfg.data.max_length)
    out = {}
    for name in ("validation", "test"):
        if name in splits:
            session.say(f"translating {name}: {len(splits[name].sources):,} sentences, {settings.beams} beam(s)")
            out[name] = translator.translate(splits[name].sources, **asdict(settings))
    return out


def _paths(split) -> dict:
    return {"source": split.source, "pairs": len(split.sources),
            "sha256": file_sha256(split.source) if Path(split.source).exists() else None}


def _facts(cfg, summary: RunSummary, model, splits, encoded, scratch: bool) -> list[tuple[str, str]]:
    params = sum(p.numel() for p in model.parameters())
    what = f"from scratch, preset {cfg.model.preset}" if scratch else "fine-tuned"
    train = splits["train"]
    return [("model", f"{cfg.model.name if not scratch else model.config.model_type} ({what}), {params / 1e6:.1f}M "
                      "parameters"),
            ("languages", f"{cfg.data.source_lang or 'source'} → {cfg.data.target_lang or 'target'}"),
            ("training pairs", f"{len(encoded['train'].source_ids):,} of {len(train.sources):,} read"),
            ("batches", f"≤{cfg.train.batch_tokens:,} tokens (source + target, padding included)"),
            ("optimizer steps", f"{summary.steps:,} (best {summary.best_step}, stopped by {summary.stop_reason})"),
            ("training tokens", f"{summary.tokens:,} at {summary.tokens_per_s:,.0f} tokens/s"
                                + (f", MFU {summary.mfu:.0%}" if summary.mfu else "")),
            ("train time", f"{summary.train_seconds / 60:.1f} min"),
            ("learning rate", f"{cfg.train.learning_rate:g}, label smoothing {cfg.train.label_smoothing:g}"),
            ("precision", cfg.runtime.precision)]


def _notes(splits, encoded) -> list[str]:
    notes = []
    for name, split in splits.items():
        for reason, lines in split.dropped.items():
            if lines:
                notes.append(f"{name}: {len(lines)} pair(s) left out, {reason}.")
        if encoded[name].too_long:
            what = "left out of training" if name == "train" else "decoded from a cut source (reference kept whole)"
            notes.append(f"{name}: {len(encoded[name].too_long)} pair(s) longer than the length caps were {what}.")
    return notes


def write_translation_outputs(session, model, tokenizer, splits, encoded, summary: RunSummary, *, losses: dict,
                              averaged: dict | None, language_fit: dict, scratch: bool) -> RunSummary:
    cfg = session.cfg
    hyps = translate_splits(cfg, model, tokenizer, splits, session)
    folder = session.run_dir / TRANSLATIONS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    metrics = {}
    for name, lines in hyps.items():
        atomic_write_text(folder / f"{name}.txt", "".join(h.replace("\n", " ") + "\n" for h in lines))
        scores = bleu_chrf(lines, splits[name].references, bootstrap=cfg.eval.bootstrap_samples, seed=cfg.train.seed)
        metrics[name] = {**scores, "loss": losses.get(name, {}).get("loss")}
        session.say(f"{name}: BLEU {scores['bleu']:.2f} · chrF {scores['chrf']:.2f} · length ratio "
                    f"{scores['length_ratio']:.3f}")
    report_split = "test" if "test" in hyps else "validation"
    split = splits[report_split]
    examples = scored_examples(split.sources, split.references, hyps[report_split], split.rows)
    settings = asdict(decoding_settings(cfg))
    model.generation_config.num_beams = settings["beams"]
    model.generation_config.length_penalty = settings["length_penalty"]
    manifest = session.manifest(
        cfg.task, family="seq2seq", objective=cfg.task, base_model=None if scratch else cfg.model.name,
        preset=cfg.model.preset if scratch else None, max_length=cfg.data.max_length,
        source_lang=cfg.data.source_lang, target_lang=cfg.data.target_lang, decoding=settings,
        normalize=cfg.data.normalize,
        data={n: _paths(s) for n, s in splits.items()}, metrics=metrics, language_fit=language_fit,
        training={"steps": summary.steps, "best_step": summary.best_step, "stop_reason": summary.stop_reason,
                  "tokens": summary.tokens, "train_seconds": summary.train_seconds,
                  "tokens_per_s": summary.tokens_per_s, "averaging": averaged})
    notes = _notes(splits, encoded)
    card = translation_model_card(manifest.model_copy(update={"versions": package_versions()}), metrics,
                                  config_yaml=session.config_yaml(), source_lang=cfg.data.source_lang,
                                  target_lang=cfg.data.target_lang, preset=cfg.model.preset if scratch else None,
                                  decoding=settings, averaging=averaged, notes=notes)
    session.save_final(model, tokenizer, manifest, extra_files={"README.md": card})
    pair = f"{cfg.data.source_lang} → {cfg.data.target_lang}" if cfg.data.source_lang else cfg.task
    md, _ = write_translation_report(session.run_dir / "report", {
        "title": f"TuneForge {cfg.task} — {pair}", "scores": metrics, "history": session.history(),
        "examples": examples, "examples_split": report_split,
        "facts": _facts(cfg, summary, model, splits, encoded, scratch), "averaging": averaged, "decoding": settings,
        "notes": notes})
    return summary.model_copy(update={"metrics": metrics, "report": str(md), "report_split": report_split,
                                      "averaging": averaged})

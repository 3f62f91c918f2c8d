"""Train an encoder-decoder on parallel text (task translation or seq2seq): pairs → a joint tokenizer (trained for a
from-scratch model, or the pretrained model's own) → the model → pairs encoded (over-long training pairs counted and
left out) → auto settings → the session's loop (objective "translation": label-smoothed token loss on token-budget
batches) with held-out loss and greedy BLEU at every evaluation → the last checkpoints averaged when that scores
better → beam-search translations of validation and test scored with sacreBLEU → final/ and the report
(recipes/translation_outputs.py)."""
from __future__ import annotations

import json
import random

from accelerate.utils import set_seed

from tuneforge.config import FinetuneConfig
from tuneforge.data.coverage import measure_coverage
from tuneforge.data.parallel import ParallelSplit, load_parallel_splits
from tuneforge.data.seq2seq_batches import Seq2SeqBatches, encode_pairs
from tuneforge.errors import UserError
from tuneforge.evaluate.clm import evaluate_clm
from tuneforge.evaluate.translation import quick_bleu
from tuneforge.generate.beam import BeamSettings
from tuneforge.generate.translate import Translator
from tuneforge.model.choose import is_auto
from tuneforge.model.lm_forward import seq2seq_loss_sum
from tuneforge.model.manifest import RunSummary
from tuneforge.model.seq2seq import (build_seq2seq, load_seq2seq, load_seq2seq_tokenizer, seq2seq_flops_per_token)
from tuneforge.recipes.translation_outputs import write_translation_outputs
from tuneforge.train.average import average_checkpoints, averaged_checkpoints
from tuneforge.train.defaults import (resolve_seq2seq_auto, resolve_seq2seq_batch, seq2seq_preset, seq2seq_total_steps,
                                      seq2seq_vocab_size)
from tuneforge.train.objectives import make_objective
from tuneforge.train.runtime import world_size
from tuneforge.train.session import Session

TOKENIZER_DIR = "tokenizer"  # the run's trained joint tokenizer: a resumed run reads it back (same ids)
MAX_POSITION = 256  # positions of a from-scratch model: data.max_length and max_target_length must fit


def translation_defaults(cfg: FinetuneConfig) -> tuple[FinetuneConfig, dict[str, str]]:
    """What a translation/seq2seq run chooses before it reads data: the selection metric and enough checkpoints kept
    for averaging."""
    cfg, why = cfg.model_copy(deep=True), {}
    if cfg.eval.metric == "auto":
        cfg.eval.metric = "bleu" if cfg.task == "translation" and cfg.eval.bleu_samples else "loss"
        why["eval.metric"] = ("bleu (greedy translations of validation sentences)" if cfg.eval.metric == "bleu"
                              else "loss (held-out token loss)")
    if cfg.eval.metric == "bleu" and not cfg.eval.bleu_samples:
        raise UserError("eval.metric bleu needs eval.bleu_samples > 0 (validation sentences translated at each "
                        "evaluation); set one or use eval.metric loss.")
    if cfg.eval.metric in ("accuracy", "macro_f1", "micro_f1"):
        raise UserError(f"eval.metric {cfg.eval.metric} is a classification metric; --task {cfg.task} uses bleu or "
                        "loss.")
    k = cfg.train.average_checkpoints
    if k > 1 and cfg.runtime.keep_checkpoints < k:
        cfg.runtime.keep_checkpoints = k
        why["runtime.keep_checkpoints"] = f"{k}: the last {k} checkpoints are averaged at the end (train.average_checkpoints)"
    return cfg, why


def _scratch(cfg: FinetuneConfig) -> bool:
    return is_auto(cfg.model.name) or cfg.model.preset is not None


def _tokenizer(cfg: FinetuneConfig, session: Session, train: ParallelSplit, why: dict):
    """The pretrained model's tokenizer; for a from-scratch model the one named by model.tokenizer, or a joint one
    trained on the training source + target text (saved in the run folder, so --resume keeps the same ids)."""
    from transformers import AutoTokenizer

    from tuneforge.data.tokenizer_train import train_tokenizer

    if not _scratch(cfg):
        return load_seq2seq_tokenizer(cfg.model.name)
    if cfg.model.tokenizer:
        return AutoTokenizer.from_pretrained(cfg.model.tokenizer)
    saved = session.run_dir / TOKENIZER_DIR
    if saved.is_dir():
        return AutoTokenizer.from_pretrained(str(saved))
    size = cfg.model.vocab_size or seq2seq_vocab_size(len(train.sources))
    if cfg.model.vocab_size is None:
        why["model.vocab_size"] = f"{size} joint pieces for {len(train.sources):,} training pairs"
    session.say(f"tokenizer: training a joint BPE tokenizer ({size} pieces) on the training source and target text")
    tokenizer = train_tokenizer(train.sources + train.targets, kind="seq2seq", vocab_size=size, lowercase=False,
                                strip_accents=False)
    if session.is_main:
        tmp = saved.with_name(f".tmp-{TOKENIZER_DIR}")
        tokenizer.save_pretrained(str(tmp))
        tmp.rename(saved)
    session.accelerator.wait_for_everyone()
    return tokenizer


def _model(cfg: FinetuneConfig, tokenizer, n_pairs: int, why: dict):
    if not _scratch(cfg):
        return load_seq2seq(cfg.model.name)
    preset = cfg.model.preset or seq2seq_preset(n_pairs)
    if cfg.model.preset is None:
        why["model.preset"] = f"{preset} (from scratch) for {n_pairs:,} training pairs"
    cfg.model.preset = preset
    need = max(cfg.data.max_length, cfg.data.max_target_length or 0) + 2
    set_seed(cfg.train.seed)  # the initial weights are part of the science
    return build_seq2seq(preset, tokenizer, max_position=max(MAX_POSITION, need))


def check_language_fit(cfg: FinetuneConfig, tokenizer, splits: dict[str, ParallelSplit]) -> dict:
    """[UNK] rate of every split's source and target text under the tokenizer: a side the tokenizer cannot write
    (another language than it was trained for) is one line, exit 2, as the classifier's language-fit check."""
    rates = {}
    for name, split in splits.items():
        for side, texts in (("source", split.sources), ("target", split.targets)):
            cov = measure_coverage(tokenizer, texts)
            rates[f"{name}.{side}"] = round(cov.unk_rate, 4)
            if cov.unk_rate > cfg.model.unk_threshold:
                script = max(cov.script_share, key=cov.script_share.get, default="unknown")
                raise UserError(f"{split.source}: {cov.unk_rate:.1%} of the {side} tokens are unknown to the tokenizer "
                                f"(mostly {script} letters); it was not trained for this language. Train on data "
                                "that includes it, or use a model whose tokenizer covers it (model.unk_threshold "
                                f"{cfg.model.unk_threshold:g}).")
    return rates


def _encode(cfg: FinetuneConfig, tokenizer, splits: dict[str, ParallelSplit], session: Session) -> dict:
    max_target = cfg.data.max_target_length or cfg.data.max_length
    out = {}
    for name, split in splits.items():
        train = name == "train"
        enc = encode_pairs(tokenizer, split.sources, split.targets, cfg.data.max_length, max_target, drop_long=train)
        if enc.too_long:
            what = "left out" if train else "cut (source truncated, references kept whole)"
            session.say(f"{name}: {len(enc.too_long)} of {len(split.sources)} pairs longer than {cfg.data.max_length} "
                        f"source / {max_target} target tokens were {what}")
        if train and not enc.source_ids:
            raise UserError(f"{split.source}: no training pair fits data.max_length {cfg.data.max_length} / "
                            f"data.max_target_length {max_target}; raise them.")
        out[name] = enc
    return out


def _bleu_sample(split: ParallelSplit, n: int, seed: int) -> list[int]:
    """The validation sentences translated at every evaluation: the same seeded sample each time."""
    idx = list(range(len(split.sources)))
    if n >= len(idx):
        return idx
    return sorted(random.Random(seed).sample(idx, n))


def finetune_translation(cfg: FinetuneConfig, resume: bool = False, overwrite: bool = False) -> RunSummary:
    """Run a translation/seq2seq fine-tune (or from-scratch training) end to end and return its summary."""
    cfg, why = translation_defaults(cfg)
    session = Session(cfg, resume, overwrite)
    splits = load_parallel_splits(cfg.data)
    for name, split in splits.items():
        for reason, lines in split.dropped.items():
            if lines:
                session.say(f"{name}: {len(lines)} pair(s) left out, {reason} (lines {', '.join(map(str, lines[:5]))}"
                            f"{' ...' if len(lines) > 5 else ''})")
    tokenizer = _tokenizer(cfg, session, splits["train"], why)
    fit = check_language_fit(cfg, tokenizer, splits)
    model = session.apply_levers(_model(cfg, tokenizer, len(splits["train"].sources), why))
    scratch = _scratch(cfg)
    encoded = _encode(cfg, tokenizer, splits, session)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    cfg, batch_why = resolve_seq2seq_batch(cfg, world_size())
    grouped = session.lever("length_grouping")
    data = {n: Seq2SeqBatches(e, pad, cfg.train.batch_tokens, grouped=grouped) for n, e in encoded.items()}
    steps_per_epoch = data["train"].steps_per_epoch()
    cfg, auto = resolve_seq2seq_auto(cfg, len(data["train"]), steps_per_epoch, model.config.d_model, scratch)
    cfg = session.resolve(cfg, {**why, **batch_why, **auto})
    session.write("split.json", json.dumps({n: {"source": s.source, "rows": s.rows, "dropped": s.dropped}
                                            for n, s in splits.items()}))
    session.say(f"train: {len(data['train']):,} pairs, {int(data['train'].lengths.sum()):,} tokens, "
                f"{steps_per_epoch} steps of ≤{cfg.train.batch_tokens} tokens per epoch")
    label_logits = session.lever("label_logits")
    val = splits["validation"]
    sample = _bleu_sample(val, cfg.eval.bleu_samples, cfg.train.seed)
    greedy = BeamSettings(beams=1, max_new_tokens=cfg.eval.max_new_tokens)

    def evaluate(m, split="validation"):
        metrics = evaluate_clm(m, data[split], batch_size=cfg.eval.batch_size, label_logits=label_logits,
                               loss_sum=seq2seq_loss_sum, **session.eval_context())
        metrics.pop("perplexity", None)
        if sample and split == "validation":
            inner = session.accelerator.unwrap_model(m)
            was_training = inner.training
            translator = Translator(inner, tokenizer, max_source_length=cfg.data.max_length)
            hyps = translator.translate([val.sources[i] for i in sample], beams=1,
                                        max_new_tokens=greedy.max_new_tokens)
            inner.train(was_training)
            metrics["bleu"] = round(quick_bleu(hyps, [val.references[i] for i in sample]), 2)
        return metrics

    result = session.train(model, data["train"],
                           make_objective("translation", label_smoothing=cfg.train.label_smoothing,
                                          label_logits=label_logits), evaluate,
                           metric=cfg.eval.metric, patience=cfg.train.early_stopping_patience,
                           total_steps=seq2seq_total_steps(cfg, steps_per_epoch),
                           flops_per_token=seq2seq_flops_per_token(model))
    final_model = session.accelerator.unwrap_model(result.model, keep_fp32_wrapper=False)
    averaged = _average(cfg, session, final_model, evaluate)
    context = {**session.eval_context(), "autocast": None}
    losses = {n: evaluate_clm(result.model, data[n], batch_size=cfg.eval.batch_size, label_logits=label_logits,
                              loss_sum=seq2seq_loss_sum, **context) for n in ("validation", "test") if n in data}
    summary = session.summary(cfg.task, result, losses, flops_per_token=seq2seq_flops_per_token(final_model))
    if session.is_main:
        summary = write_translation_outputs(session, final_model, tokenizer, splits, encoded, summary, losses=losses,
                                            averaged=averaged, language_fit=fit, scratch=scratch)
    return session.finish(summary)


def _average(cfg: FinetuneConfig, session: Session, model, evaluate) -> dict | None:
    """Average the last K checkpoints' weights; keep the average when it scores at least as well on validation as
    the best single checkpoint (which the loop has loaded). Returns what was compared and kept."""
    k = cfg.train.average_checkpoints
    if k < 2:
        return None
    averaged = average_checkpoints(session.run_dir, k)
    if averaged is None:
        return None
    k = len(averaged_checkpoints(session.run_dir, k))  # fewer when the run saved fewer
    metric = cfg.eval.metric
    best = evaluate(model)
    kept = {n: p.detach().clone() for n, p in model.state_dict().items()}
    model.load_state_dict(averaged, strict=False)
    mean = evaluate(model)
    better = mean[metric] <= best[metric] if metric == "loss" else mean[metric] >= best[metric]
    if not better:
        model.load_state_dict(kept)
    outcome = {"checkpoints": k, "metric": metric, "best_single": best[metric], "average": mean[metric],
               "kept": "average" if better else "best single checkpoint"}
    session.say(f"checkpoint averaging: last {k} → validation {metric} {mean[metric]} vs best single "
                f"{best[metric]}: kept the {outcome['kept']}")
    return outcome

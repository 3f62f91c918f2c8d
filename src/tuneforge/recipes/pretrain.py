"""Pretraining: corpus → clean → tokenizer (trained or given) → cached packed blocks → model (preset from scratch,
or continued) → the session's loop → held-out perplexity → final/ + report.

One flow for both objectives; what differs lives in one class each: `MaskedLM` below (masked-LM, BERT-style
encoders) and `CausalLM` in pretrain_clm.py (next-token prediction, GPT-style models).
"""
from __future__ import annotations

import json

import numpy as np
from accelerate.utils import set_seed

from tuneforge.config import PretrainConfig
from tuneforge.config.schema import ClmConfig
from tuneforge.data.corpus import expand_sources
from tuneforge.data.masking import Masker
from tuneforge.data.pack import BlockBatches, PackedCorpus
from tuneforge.errors import UserError
from tuneforge.evaluate.mlm import evaluate_mlm
from tuneforge.evaluate.pretrain_report import write_pretrain_report
from tuneforge.model.inspect import mlm_training_flops
from tuneforge.model.manifest import RunSummary
from tuneforge.model.mlm import SparseMLM, build_mlm, load_mlm
from tuneforge.recipes.pretrain_clm import CausalLM
from tuneforge.recipes.pretrain_data import packed_corpus, pretrain_tokenizer, resolve_whole_word
from tuneforge.train.defaults import pretrain_total_steps, resolve_objective_defaults, resolve_pretrain_auto
from tuneforge.train.objectives import make_objective
from tuneforge.train.runtime import world_size
from tuneforge.train.session import Session

EVAL_MASK_SEED = 0  # held-out masks are the same for every run, so perplexities compare across runs


class MaskedLM:
    """Masked-LM: [CLS] + texts joined by [SEP], 15% of tokens masked, the MLM head on the masked ones only."""
    task = "mlm"

    @staticmethod
    def check(cfg: PretrainConfig) -> None:
        for key, value in cfg.clm.model_dump().items():
            if value != ClmConfig.model_fields[key].default:
                raise UserError(f"clm.{key}: a causal-LM setting, but objective is mlm; drop it or use --objective clm.")
        if cfg.model.name and cfg.model.norm != "post":
            raise UserError("model.norm: a continued model keeps its own architecture; drop model.norm or use --preset.")

    @staticmethod
    def check_tokenizer(tokenizer) -> None:
        if tokenizer.mask_token_id is None or tokenizer.cls_token_id is None or tokenizer.sep_token_id is None:
            raise UserError("the tokenizer has no mask/cls/sep token, so it cannot be used for masked-LM.")

    @staticmethod
    def end_id(tokenizer) -> int:
        return tokenizer.sep_token_id

    @staticmethod
    def cls_id(tokenizer) -> int:
        return tokenizer.cls_token_id

    @staticmethod
    def model(cfg: PretrainConfig, tokenizer):
        # The model-side levers are measured on fine-tuning only; masked-LM keeps stock dropout and attention.
        if cfg.model.preset:
            return build_mlm(cfg.model.preset, tokenizer, cfg.model.max_position, cfg.model.dropout, cfg.model.norm)
        model = load_mlm(cfg.model.name)
        if model.config.max_position_embeddings < cfg.data.block_size:
            raise UserError(f"data.block_size {cfg.data.block_size} exceeds the model's {model.config.max_position_embeddings} positions.")
        return model

    @staticmethod
    def data(cfg: PretrainConfig, corpus: PackedCorpus, blocks: np.ndarray, tokenizer, seed: int) -> BlockBatches:
        masker = Masker(len(tokenizer), tokenizer.all_special_ids, tokenizer.mask_token_id, cfg.mlm.mask_rate,
                        cfg.mlm.whole_word)
        return BlockBatches(corpus, blocks, masker, seed, tokenizer.sep_token_id if cfg.mlm.document_attention else None)

    @staticmethod
    def flops(model, cfg: PretrainConfig) -> float:
        return mlm_training_flops(model, cfg.data.block_size, cfg.mlm.mask_rate)

    @staticmethod
    def trainable(model):
        return SparseMLM(model)

    @staticmethod
    def saveable(model):
        return model.model  # the *ForMaskedLM inside SparseMLM

    @staticmethod
    def evaluate(model, data: BlockBatches, cfg: PretrainConfig, context: dict) -> dict:
        return evaluate_mlm(model, data, batch_size=cfg.eval.batch_size, **context)

    @staticmethod
    def samples(model, tokenizer, data, cfg: PretrainConfig) -> list[dict]:
        return []


OBJECTIVES = {"mlm": MaskedLM, "clm": CausalLM}


def _check(cfg: PretrainConfig) -> None:
    m = cfg.model
    if bool(m.name) == bool(m.preset):
        example = "smollm2-135m" if cfg.objective == "clm" else "minilm-l6"
        raise UserError("pretrain needs exactly one of model.preset (from scratch, e.g. --preset mini) or "
                        f"model.name (continue a model, e.g. --model {example}).")
    if m.name and cfg.tokenizer.path:
        raise UserError("tokenizer.path: a continued model keeps its own tokenizer; drop --tokenizer or use --preset.")
    OBJECTIVES[cfg.objective].check(cfg)


def pretrain(cfg: PretrainConfig, resume: bool = False, overwrite: bool = False) -> RunSummary:
    """Run pretraining end to end (masked-LM or causal LM by `cfg.objective`); return its summary."""
    cfg, objective_why = resolve_objective_defaults(cfg)
    _check(cfg)
    parts = OBJECTIVES[cfg.objective]
    session = Session(cfg, resume, overwrite)
    if not resume:  # mark the folder as a run at once; the resolved config replaces this below
        session.write("config.yaml", session.config_yaml())
    sources = expand_sources(cfg.data.corpus)  # a missing file is an error before any work
    cfg, words_why = resolve_whole_word(cfg, sources)  # before the cache key: the stream holds the word starts
    tokenizer = pretrain_tokenizer(cfg, session)
    parts.check_tokenizer(tokenizer)
    corpus, corpus_meta = packed_corpus(cfg, sources, tokenizer, session, parts.end_id(tokenizer),
                                        parts.cls_id(tokenizer))
    set_seed(cfg.train.seed)  # a reproducible init
    model = parts.model(cfg, tokenizer)
    train_blocks, val_blocks = corpus.split(cfg.data.validation_fraction, cfg.data.max_validation_blocks)
    cfg, why = resolve_pretrain_auto(cfg, len(train_blocks), model.config.hidden_size, bool(cfg.model.preset),
                                     world_size())
    cfg = session.resolve(cfg, {**objective_why, **words_why, **why})
    session.say(f"corpus: {corpus_meta['texts']:,} texts, {corpus_meta['tokens']:,} tokens → "
                f"{len(train_blocks):,} training + {len(val_blocks):,} held-out blocks of {cfg.data.block_size}")
    session.write("corpus.json", json.dumps(corpus_meta, indent=2))

    val_data = parts.data(cfg, corpus, val_blocks, tokenizer, EVAL_MASK_SEED)
    flops = parts.flops(model, cfg)

    def evaluate(m):
        return parts.evaluate(session.accelerator.unwrap_model(m), val_data, cfg, session.eval_context())

    result = session.train(parts.trainable(model), parts.data(cfg, corpus, train_blocks, tokenizer, cfg.train.seed),
                           make_objective(cfg.objective), evaluate, metric="loss", evaluate_first=True,
                           total_steps=pretrain_total_steps(cfg, len(train_blocks)), flops_per_token=flops)
    if result.initial_metrics:
        session.say(f"before training: held-out perplexity {result.initial_metrics['perplexity']:.2f}")
    history = session.history()
    initial = result.initial_metrics or next(
        (r for r in history if r.get("step") == 0 and r.get("split") == "validation"), None)
    summary = session.summary(parts.task, result, evaluate(result.model), flops_per_token=flops,
                              corpus={k: corpus_meta[k] for k in ("texts", "tokens", "cache", "sources")})
    summary = summary.model_copy(update={"initial_metrics": initial})
    if session.is_main:
        trained = parts.saveable(session.accelerator.unwrap_model(result.model))
        samples = parts.samples(trained, tokenizer, val_data, cfg)
        if samples is None:
            session.say("report samples skipped: the generation module (tuneforge.generate) is not installed")
        summary = _write_outputs(session, trained, tokenizer, summary, history, samples)
    return session.finish(summary)


def _write_outputs(session: Session, model, tokenizer, summary: RunSummary, history: list[dict],
                   samples: list[dict] | None) -> RunSummary:
    cfg = session.cfg
    corpus = summary.corpus
    manifest = session.manifest(
        summary.task, objective=cfg.objective, max_length=cfg.data.block_size,
        base_model=cfg.model.name or f"preset:{cfg.model.preset}",
        data={"corpus": corpus["sources"], **{k: v for k, v in corpus.items() if k != "sources"}},
        metrics={"validation": summary.metrics, "initial": summary.initial_metrics},
        training={"steps": summary.steps, "best_step": summary.best_step, "stop_reason": summary.stop_reason,
                  "tokens": summary.tokens, "train_seconds": summary.train_seconds,
                  "tokens_per_s": summary.tokens_per_s, "mfu": summary.mfu})
    session.save_final(model, tokenizer, manifest)
    title = f"TuneForge pretraining — {cfg.objective}, {manifest.base_model}"
    report = write_pretrain_report(session.run_dir / "report", summary, history, title, samples)
    return summary.model_copy(update={"report": str(report)})

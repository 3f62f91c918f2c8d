"""Masked-LM pretraining: corpus → clean → tokenizer (trained or given) → cached packed blocks → model (preset from
scratch, or continued) → the session's loop → held-out perplexity → final/ + report."""
from __future__ import annotations

import json

from accelerate.utils import set_seed

from tuneforge.config import PretrainConfig
from tuneforge.data.corpus import expand_sources
from tuneforge.data.masking import Masker
from tuneforge.data.pack import BlockBatches
from tuneforge.errors import UserError
from tuneforge.evaluate.mlm import evaluate_mlm
from tuneforge.evaluate.pretrain_report import write_pretrain_report
from tuneforge.model.inspect import mlm_training_flops
from tuneforge.model.manifest import RunSummary
from tuneforge.model.mlm import SparseMLM, build_mlm, load_mlm
from tuneforge.recipes.pretrain_data import packed_corpus, pretrain_tokenizer
from tuneforge.train.defaults import pretrain_total_steps, resolve_pretrain_auto
from tuneforge.train.objectives import make_objective
from tuneforge.train.runtime import world_size
from tuneforge.train.session import Session

EVAL_MASK_SEED = 0  # held-out masks are the same for every run, so perplexities compare across runs


def _check(cfg: PretrainConfig) -> None:
    m = cfg.model
    if bool(m.name) == bool(m.preset):
        raise UserError("pretrain needs exactly one of model.preset (from scratch, e.g. --preset mini) or "
                        "model.name (continue an encoder, e.g. --model minilm-l6).")
    if m.name and cfg.tokenizer.path:
        raise UserError("tokenizer.path: a continued model keeps its own tokenizer; drop --tokenizer or use --preset.")
    if m.name and m.norm != "post":
        raise UserError("model.norm: a continued model keeps its own architecture; drop model.norm or use --preset.")


def _model(cfg: PretrainConfig, tokenizer):
    set_seed(cfg.train.seed)
    if cfg.model.preset:
        return build_mlm(cfg.model.preset, tokenizer, cfg.model.max_position, cfg.model.dropout, cfg.model.norm)
    model = load_mlm(cfg.model.name)
    if model.config.max_position_embeddings < cfg.data.block_size:
        raise UserError(f"data.block_size {cfg.data.block_size} exceeds the model's {model.config.max_position_embeddings} positions.")
    return model


def pretrain(cfg: PretrainConfig, resume: bool = False, overwrite: bool = False) -> RunSummary:
    """Run masked-LM pretraining end to end; return its summary (metrics, throughput, paths)."""
    _check(cfg)
    session = Session(cfg, resume, overwrite)
    if not resume:  # mark the folder as a run at once; the resolved config replaces this below
        session.write("config.yaml", session.config_yaml())
    sources = expand_sources(cfg.data.corpus)  # a missing file is an error before any work
    tokenizer = pretrain_tokenizer(cfg, session)
    if tokenizer.mask_token_id is None or tokenizer.cls_token_id is None or tokenizer.sep_token_id is None:
        raise UserError("the tokenizer has no mask/cls/sep token, so it cannot be used for masked-LM.")
    corpus, corpus_meta = packed_corpus(cfg, sources, tokenizer, session)
    # The model-side levers are measured on fine-tuning only; masked-LM keeps stock dropout and attention.
    model = _model(cfg, tokenizer)
    train_blocks, val_blocks = corpus.split(cfg.data.validation_fraction, cfg.data.max_validation_blocks)
    cfg, why = resolve_pretrain_auto(cfg, len(train_blocks), model.config.hidden_size, bool(cfg.model.preset),
                                     world_size())
    cfg = session.resolve(cfg, why)
    session.say(f"corpus: {corpus_meta['texts']:,} texts, {corpus_meta['tokens']:,} tokens → "
                f"{len(train_blocks):,} training + {len(val_blocks):,} held-out blocks of {cfg.data.block_size}")
    session.write("corpus.json", json.dumps(corpus_meta, indent=2))

    masker = Masker(len(tokenizer), tokenizer.all_special_ids, tokenizer.mask_token_id, cfg.mlm.mask_rate,
                    cfg.mlm.whole_word)
    sep = tokenizer.sep_token_id if cfg.mlm.document_attention else None
    val_data = BlockBatches(corpus, val_blocks, masker, EVAL_MASK_SEED, sep)
    flops = mlm_training_flops(model, cfg.data.block_size, cfg.mlm.mask_rate)

    def evaluate(m):
        return evaluate_mlm(session.accelerator.unwrap_model(m), val_data, batch_size=cfg.eval.batch_size,
                            **session.eval_context())

    result = session.train(SparseMLM(model), BlockBatches(corpus, train_blocks, masker, cfg.train.seed, sep),
                           make_objective("mlm"), evaluate, metric="loss", evaluate_first=True,
                           total_steps=pretrain_total_steps(cfg, len(train_blocks)), flops_per_token=flops)
    if result.initial_metrics:
        session.say(f"before training: held-out perplexity {result.initial_metrics['perplexity']:.2f}")
    history = session.history()
    initial = result.initial_metrics or next(
        (r for r in history if r.get("step") == 0 and r.get("split") == "validation"), None)
    summary = session.summary("mlm", result, evaluate(result.model), flops_per_token=flops,
                              corpus={k: corpus_meta[k] for k in ("texts", "tokens", "cache", "sources")})
    summary = summary.model_copy(update={"initial_metrics": initial})
    if session.is_main:
        summary = _write_outputs(session, session.accelerator.unwrap_model(result.model).model, tokenizer, summary,
                                 history)
    return session.finish(summary)


def _write_outputs(session: Session, model, tokenizer, summary: RunSummary, history: list[dict]) -> RunSummary:
    cfg = session.cfg
    corpus = summary.corpus
    manifest = session.manifest(
        "mlm", objective=cfg.objective, max_length=cfg.data.block_size,
        base_model=cfg.model.name or f"preset:{cfg.model.preset}",
        data={"corpus": corpus["sources"], **{k: v for k, v in corpus.items() if k != "sources"}},
        metrics={"validation": summary.metrics, "initial": summary.initial_metrics},
        training={"steps": summary.steps, "best_step": summary.best_step, "stop_reason": summary.stop_reason,
                  "tokens": summary.tokens, "train_seconds": summary.train_seconds,
                  "tokens_per_s": summary.tokens_per_s, "mfu": summary.mfu})
    session.save_final(model, tokenizer, manifest)
    title = f"TuneForge pretraining — {cfg.objective}, {manifest.base_model}"
    report = write_pretrain_report(session.run_dir / "report", summary, history, title)
    return summary.model_copy(update={"report": str(report)})

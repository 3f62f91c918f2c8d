"""Pretrain an encoder with masked-LM: corpus → tokenizer (given, the model's, or trained) → cached packed blocks
→ model (preset from scratch, or continued) → the shared loop → held-out perplexity → final/ + report."""
from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

from accelerate.utils import set_seed

from tuneforge.config import PretrainConfig, to_yaml
from tuneforge.data.corpus import CleanStats, expand_sources, iter_clean_texts
from tuneforge.data.masking import Masker
from tuneforge.data.pack import (
    BlockBatches,
    PackedCorpus,
    build_token_stream,
    cache_key,
    cached_token_stream,
    default_cache_dir,
)
from tuneforge.data.sources import file_sha256
from tuneforge.errors import UserError
from tuneforge.evaluate.mlm import evaluate_mlm
from tuneforge.evaluate.pretrain_report import write_pretrain_report
from tuneforge.model.artifact import atomic_write_text, save_model_folder
from tuneforge.model.build import load_tokenizer
from tuneforge.model.inspect import flops_per_token
from tuneforge.model.mlm import SparseMLM, build_mlm, load_mlm
from tuneforge.recipes.run_dir import prepare_run_dir, resume_state, say
from tuneforge.recipes.tokenizer import train_tokenizer_folder
from tuneforge.train.defaults import pretrain_total_steps, resolve_pretrain_auto
from tuneforge.train.loop import LoopConfig, LoopState, fit
from tuneforge.train.objectives import make_objective
from tuneforge.train.optim import ProgressSchedule, build_optimizer
from tuneforge.train.progress import MetricsLog, make_progress
from tuneforge.train.runtime import (
    compute_dtype,
    make_accelerator,
    measure_matmul_peak,
    pin_precision,
    world_size,
)

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


def _tokenizer(cfg: PretrainConfig, run_dir: Path, accelerator):
    """The model's tokenizer (continued), a given one, or one trained on the corpus into run_dir/tokenizer."""
    if cfg.model.name:
        return load_tokenizer(cfg.model.name)
    if cfg.tokenizer.path:
        return load_tokenizer(cfg.tokenizer.path)
    folder = run_dir / "tokenizer"
    if accelerator.is_main_process and not folder.is_dir():
        say(accelerator, f"training a {cfg.tokenizer.type} tokenizer (vocabulary {cfg.tokenizer.vocab_size}) on the corpus")
        train_tokenizer_folder(cfg.data, cfg.tokenizer, folder, model_max_length=cfg.model.max_position)
    accelerator.wait_for_everyone()
    return load_tokenizer(str(folder))


def _packed(cfg: PretrainConfig, sources, tokenizer, accelerator) -> tuple[PackedCorpus, dict]:
    """Tokenize once per (corpus content, cleaning, tokenizer): the main process builds, the others wait."""
    d = cfg.data
    params = {"text_column": d.text_column, "normalize": d.normalize, "dedup": d.dedup, "min_chars": d.min_chars,
              "max_chars": d.max_chars, "whole_word": cfg.mlm.whole_word,
              # whole-word streams differ with and without jieba (Chinese words vs single characters)
              "jieba": cfg.mlm.whole_word and importlib.util.find_spec("jieba") is not None,
              # only when on, so caches built before the option existed keep their keys
              **({"redact_pii": True} if d.redact_pii else {})}
    hashes = [file_sha256(p) for p in sources]  # read once: the cache key and the manifest both use them
    key = cache_key(hashes, params, tokenizer)
    root = Path(d.cache_dir) if d.cache_dir else default_cache_dir()
    stats = CleanStats()

    def build(folder: Path) -> dict:
        progress = make_progress(cfg.runtime.progress)
        with progress:
            task = progress.add_task("tokenize", total=None, info="texts")
            texts = iter_clean_texts(sources, d.text_column, d.normalize, d.dedup, d.min_chars, d.max_chars, stats,
                                     redact_pii=d.redact_pii)
            meta = build_token_stream(texts, tokenizer, folder, cfg.mlm.whole_word,
                                      on_chunk=lambda n: progress.advance(task, n))
        meta["clean"] = {k: v for k, v in vars(stats).items()}
        (folder / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        return meta

    if accelerator.is_main_process:
        folder = cached_token_stream(key, root, build)
    accelerator.wait_for_everyone()
    folder = root / "corpus" / key
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    if meta["tokens"] < 2 * d.block_size:
        raise UserError(f"the corpus has {meta['tokens']} tokens after cleaning: not enough for two blocks of "
                        f"{d.block_size}. Add text or lower data.block_size / data.min_chars.")
    corpus = PackedCorpus.open(folder, d.block_size, tokenizer.cls_token_id)
    if corpus.n_blocks < 2:
        raise UserError(f"the corpus has {meta['tokens']} tokens after cleaning: not enough for two blocks of "
                        f"{d.block_size}. Add text or lower data.block_size / data.min_chars.")
    return corpus, {"cache": str(folder), "sources": [{"source": str(p), "sha256": h} for p, h in zip(sources, hashes)],
                    **meta}


def _model(cfg: PretrainConfig, tokenizer):
    set_seed(cfg.train.seed)
    if cfg.model.preset:
        return build_mlm(cfg.model.preset, tokenizer, cfg.model.max_position, cfg.model.dropout, cfg.model.norm)
    model = load_mlm(cfg.model.name)
    if model.config.max_position_embeddings < cfg.data.block_size:
        raise UserError(f"data.block_size {cfg.data.block_size} exceeds the model's {model.config.max_position_embeddings} positions.")
    return model


def pretrain(cfg: PretrainConfig, resume: bool = False, overwrite: bool = False) -> dict:
    """Run masked-LM pretraining end to end; return a summary (metrics, throughput, paths)."""
    _check(cfg)
    accelerator = make_accelerator(cfg.runtime)
    run_dir = Path(cfg.output)
    if accelerator.is_main_process:
        prepare_run_dir(run_dir, resume, overwrite)
        run_dir.mkdir(parents=True, exist_ok=True)
        if not resume:  # mark the folder as a run at once; the resolved config replaces this below
            atomic_write_text(run_dir / "config.yaml", to_yaml(cfg))
    accelerator.wait_for_everyone()
    sources = expand_sources(cfg.data.corpus)
    tokenizer = _tokenizer(cfg, run_dir, accelerator)
    if tokenizer.mask_token_id is None or tokenizer.cls_token_id is None or tokenizer.sep_token_id is None:
        raise UserError("the tokenizer has no mask/cls/sep token, so it cannot be used for masked-LM.")
    corpus, corpus_meta = _packed(cfg, sources, tokenizer, accelerator)
    model = _model(cfg, tokenizer)
    train_blocks, val_blocks = corpus.split(cfg.data.validation_fraction, cfg.data.max_validation_blocks)
    cfg, why = resolve_pretrain_auto(cfg, len(train_blocks), model.config.hidden_size, bool(cfg.model.preset), world_size())
    cfg, chosen = pin_precision(cfg, accelerator)
    for key, reason in {**why, **chosen}.items():
        say(accelerator, f"auto: {key} = {reason}")
    say(accelerator, f"corpus: {corpus_meta['texts']:,} texts, {corpus_meta['tokens']:,} tokens → "
                     f"{len(train_blocks):,} training + {len(val_blocks):,} held-out blocks of {cfg.data.block_size}")
    if accelerator.is_main_process:
        atomic_write_text(run_dir / "config.yaml", to_yaml(cfg))
        atomic_write_text(run_dir / "corpus.json", json.dumps(corpus_meta, indent=2))

    masker = Masker(len(tokenizer), tokenizer.all_special_ids, tokenizer.mask_token_id, cfg.mlm.mask_rate, cfg.mlm.whole_word)
    sep = tokenizer.sep_token_id if cfg.mlm.document_attention else None
    train_data = BlockBatches(corpus, train_blocks, masker, cfg.train.seed, sep)
    val_data = BlockBatches(corpus, val_blocks, masker, EVAL_MASK_SEED, sep)
    flops = flops_per_token(model, cfg.data.block_size)
    wrapped = SparseMLM(model)
    optimizer = build_optimizer(wrapped, cfg.train.learning_rate, cfg.train.weight_decay)
    scheduler = ProgressSchedule(optimizer, cfg.train.warmup_ratio)
    wrapped, optimizer = accelerator.prepare(wrapped, optimizer)
    accelerator.register_for_checkpointing(scheduler)

    def evaluate(m):
        return evaluate_mlm(accelerator.unwrap_model(m), val_data, batch_size=cfg.eval.batch_size,
                            device=accelerator.device, rank=accelerator.process_index, world=accelerator.num_processes,
                            reduce=lambda t: accelerator.reduce(t, "sum"), autocast=accelerator.autocast)

    log = MetricsLog(run_dir / "metrics.jsonl", accelerator.is_main_process)
    state = resume_state(accelerator, run_dir) if resume else LoopState()
    log.truncate_after(state.step)
    initial = None
    if state.step == 0:
        initial = evaluate(wrapped)
        log.write({"step": 0, "split": "validation", **initial})
        say(accelerator, f"before training: held-out perplexity {initial['perplexity']:.2f}")
    peak = measure_matmul_peak(accelerator.device, compute_dtype(accelerator))
    loop_cfg = _loop_config(cfg, run_dir, pretrain_total_steps(cfg, len(train_blocks)), flops["training_6n"], peak)
    state = fit(accelerator, wrapped, optimizer, scheduler, train_data, make_objective("mlm"), evaluate, loop_cfg, state)

    final = evaluate(wrapped)
    # A neighbour's load can depress one measurement; the better of start and end is the machine's peak.
    peak = max(peak, measure_matmul_peak(accelerator.device, compute_dtype(accelerator)))
    history = log.read()
    initial = initial or next((r for r in history if r.get("step") == 0 and r.get("split") == "validation"), None)
    tps = state.tokens / max(state.train_seconds, 1e-9)
    summary = {"run_dir": str(run_dir), "final": str(run_dir / "final"), "metrics": final, "initial_metrics": initial,
               "steps": state.step, "best_step": state.best_step, "stop_reason": state.stop_reason,
               "tokens": state.tokens, "train_seconds": round(state.train_seconds, 2), "tokens_per_s": round(tps, 1),
               "peak_flops": peak, "flops_per_token_6n": flops["training_6n"],
               "mfu": round(tps * flops["training_6n"] / (peak * accelerator.num_processes), 4),
               "corpus": {k: corpus_meta[k] for k in ("texts", "tokens", "cache", "sources")}}
    if accelerator.is_main_process:
        _write_outputs(accelerator.unwrap_model(wrapped).model, tokenizer, cfg, summary, history, run_dir)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return summary


def _loop_config(cfg: PretrainConfig, run_dir: Path, steps: int | None, flops_6n: float, peak: float) -> LoopConfig:
    t = cfg.train
    return LoopConfig(run_dir=run_dir, total_steps=steps, batch_size=t.batch_size, grad_accum=t.grad_accum_steps,
                      max_grad_norm=t.max_grad_norm, eval_every=cfg.eval.every_steps, metric="loss", patience=0,
                      budget_seconds=t.budget_minutes * 60 if t.budget_minutes else None, max_tokens=t.max_tokens,
                      keep_checkpoints=cfg.runtime.keep_checkpoints, log_every=cfg.runtime.log_every_steps,
                      seed=t.seed, progress=cfg.runtime.progress, flops_per_token=flops_6n, peak_flops=peak)


def _write_outputs(model, tokenizer, cfg: PretrainConfig, summary: dict, history: list[dict],
                   run_dir: Path) -> None:
    config_text = to_yaml(cfg)
    manifest = {"task": "mlm", "objective": cfg.objective, "max_length": cfg.data.block_size,
                "base_model": cfg.model.name or f"preset:{cfg.model.preset}",
                "config_sha256": hashlib.sha256(config_text.encode()).hexdigest(),
                "data": {"corpus": summary["corpus"]["sources"],
                         **{k: v for k, v in summary["corpus"].items() if k != "sources"}},
                "metrics": {"validation": summary["metrics"], "initial": summary["initial_metrics"]},
                "training": {k: summary[k] for k in ("steps", "best_step", "stop_reason", "tokens", "train_seconds",
                                                     "tokens_per_s", "mfu")}}
    log = "".join(json.dumps(r) + "\n" for r in history)
    save_model_folder(model, tokenizer, run_dir / "final", manifest,
                      extra_files={"metrics.jsonl": log, "training_config.yaml": config_text})
    title = f"TuneForge pretraining — {cfg.objective}, {manifest['base_model']}"
    summary["report"] = str(write_pretrain_report(run_dir / "report", summary, history, title))
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2, ensure_ascii=False))

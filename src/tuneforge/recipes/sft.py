"""Instruction-tune (SFT) a causal LM: chats → tokens with the loss on the answers only → packed rows → model (every
weight, or LoRA adapters) → auto settings → the session's loop (objective "sft") → held-out loss and perplexity →
greedy answers scored against the references → final/ (model or adapter, with its model card) and the report."""
from __future__ import annotations

import json
import math

import torch
from accelerate.utils import DistributedType, set_seed

from tuneforge.config import FinetuneConfig
from tuneforge.data.sft import chat_format, encode_chats, load_sft_splits, response_lengths
from tuneforge.data.sft_pack import SftBatches
from tuneforge.errors import UserError
from tuneforge.evaluate.clm import evaluate_clm
from tuneforge.model.causal import load_causal_lm, load_causal_tokenizer
from tuneforge.model.choose import is_auto
from tuneforge.model.lm_forward import lm_inputs
from tuneforge.model.lora import apply_lora
from tuneforge.model.manifest import RunSummary
from tuneforge.recipes.sft_outputs import final_scores, write_sft_outputs
from tuneforge.train.defaults import resolve_auto, total_steps
from tuneforge.train.objectives import make_objective
from tuneforge.train.runtime import world_size
from tuneforge.train.session import Session

DEFAULT_MODEL = "smollm2-135m"  # what model.name auto (the default) means for sft; classification picks an encoder
MAX_LENGTH = 512  # tokens per example and per packed row
BATCH_ROWS, EVAL_BATCH_ROWS = 8, 16
EPOCHS = 2.0  # instruction tuning of a pretrained chat model: a couple of passes (early stopping on the held-out loss)
LORA_LEARNING_RATE = 2e-4  # adapters start at zero and are small: they want a larger step than full fine-tuning
# Tokens per micro-batch on CPU. Activations, not weights, fill memory: one LoRA step of smollm2-135m on 8 packed rows
# of 512 tokens peaked at 16.1 GB RSS (killed by the OOM killer on a 24 GB machine beside other work), 2 rows at 4.8 GB.
MICRO_TOKENS_CPU = 1024


def sft_defaults(cfg: FinetuneConfig) -> tuple[FinetuneConfig, dict[str, str]]:
    """SFT's own auto values, for what the user left unset; the rest comes from `resolve_auto` as for classification."""
    cfg, why = cfg.model_copy(deep=True), {}
    if "name" not in cfg.model.model_fields_set or is_auto(cfg.model.name):
        cfg.model.name = DEFAULT_MODEL
        why["model.name"] = f"{DEFAULT_MODEL} (sft)"
    if "max_length" not in cfg.data.model_fields_set:
        cfg.data.max_length = MAX_LENGTH
        why["data.max_length"] = f"{MAX_LENGTH} (sft: tokens per example and per packed row)"
    if "batch_size" not in cfg.eval.model_fields_set:
        cfg.eval.batch_size = EVAL_BATCH_ROWS
        why["eval.batch_size"] = f"{EVAL_BATCH_ROWS} rows (sft)"
    t = cfg.train
    if t.batch_size is None:
        t.batch_size = BATCH_ROWS
        why["train.batch_size"] = f"{BATCH_ROWS} rows of up to {cfg.data.max_length} tokens (sft)"
    if t.epochs is None:
        t.epochs = EPOCHS
        why["train.epochs"] = f"{EPOCHS:g} (sft; early stopping on the held-out loss may end sooner)"
    if t.learning_rate is None and cfg.lora.enabled:
        t.learning_rate = LORA_LEARNING_RATE
        why["train.learning_rate"] = f"{LORA_LEARNING_RATE:g} (LoRA adapters)"
    if cfg.eval.metric == "auto":
        cfg.eval.metric = "loss"
        why["eval.metric"] = "loss (sft: held-out loss on the answer tokens)"
    return cfg, why


def micro_batching(cfg: FinetuneConfig, device_type: str, world: int) -> tuple[FinetuneConfig, dict[str, str]]:
    """On CPU, unless the user set `train.grad_accum_steps`: split each process's batch into micro-batches of at
    most MICRO_TOKENS_CPU tokens. The optimizer step is the same (the loop weighs micro-batches by their answer
    tokens), only the peak memory falls."""
    t = cfg.train
    if device_type != "cpu" or "grad_accum_steps" in t.model_fields_set or t.batch_size is None:
        return cfg, {}
    per_rank = max(1, t.batch_size // world)
    accum = math.ceil(per_rank / max(1, MICRO_TOKENS_CPU // cfg.data.max_length))
    if accum <= 1:
        return cfg, {}
    cfg = cfg.model_copy(deep=True)
    cfg.train.grad_accum_steps = accum
    rows = math.ceil(per_rank / accum)
    return cfg, {"train.grad_accum_steps": f"{accum}: micro-batches of {rows} row(s) × {cfg.data.max_length} tokens "
                                           "keep activation memory to a few GB on CPU (same optimizer step)"}


def _build(cfg: FinetuneConfig, session: Session):
    """The model (pretrained; an encoder folder is refused here) and its tokenizer with the chat format settled, then
    LoRA adapters when asked."""
    model = load_causal_lm(cfg.model.name)  # training forwards pass use_cache=False; final/ keeps the cache on
    tokenizer = load_causal_tokenizer(cfg.model.name)
    fmt = chat_format(tokenizer)
    if fmt == "plain":
        session.say(f"note: {cfg.model.name}'s tokenizer has no chat template; using the plain format "
                    "'prompt\\nresponse<eos>' (final/ keeps it as its chat template)")
    set_seed(cfg.train.seed)  # LoRA's initialisation is part of the science
    if cfg.lora.enabled:
        model = apply_lora(model, cfg.lora.rank, cfg.lora.alpha, cfg.lora.dropout, cfg.lora.target_modules)
    return tokenizer, fmt, model


@torch.no_grad()
def packing_isolates(model) -> bool:
    """Whether this model honours the packed-row inputs: the second of two packed texts must get the logits it gets
    alone (a model that ignored the document mask would let it see the first)."""
    vocab = model.get_input_embeddings().num_embeddings
    ids = torch.randint(0, vocab, (1, 12), generator=torch.Generator().manual_seed(0))
    was_training = model.training
    model.eval()
    segments = torch.tensor([[1] * 5 + [2] * 7])
    packed = model(**lm_inputs(model, {"input_ids": ids, "segment_ids": segments})).logits[0, 5:]
    alone = model(input_ids=ids[:, 5:], use_cache=False).logits[0]
    model.train(was_training)
    return torch.allclose(packed, alone, atol=1e-4 * max(1.0, alone.abs().max().item()))


def _encode(cfg: FinetuneConfig, splits, tokenizer, session: Session, packed: bool) -> dict[str, SftBatches]:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out = {}
    for name, split in splits.items():
        enc = encode_chats(tokenizer, split.chats, cfg.data.max_length)
        if enc.truncated or enc.dropped:
            session.say(f"{name}: {enc.truncated} of {len(split.chats)} examples longer than data.max_length "
                        f"{cfg.data.max_length} were cut; {enc.dropped} left out (no answer token before the cut)")
        if not len(enc):
            raise UserError(f"{split.source}: no example keeps an answer token within data.max_length "
                            f"{cfg.data.max_length}; raise it.")
        out[name] = SftBatches(enc, pad, packed, cfg.data.max_length, grouped=session.lever("length_grouping"))
    return out


def _final_model(cfg: FinetuneConfig, session: Session, prepared):
    """The trained model whole, for generating and saving (main process; None elsewhere), in fp32 as generate and
    serve run final/: unwrapping drops Accelerate's autocast wrapper. Under FSDP every rank hands in its shards and
    the main process loads them into a fresh copy."""
    a = session.accelerator
    model = a.unwrap_model(prepared, keep_fp32_wrapper=False)
    if a.distributed_type != DistributedType.FSDP:
        return model
    state = a.get_state_dict(prepared)  # a collective: every rank calls it
    if not session.is_main:
        return None
    whole = load_causal_lm(cfg.model.name)
    if cfg.lora.enabled:
        whole = apply_lora(whole, cfg.lora.rank, cfg.lora.alpha, cfg.lora.dropout, cfg.lora.target_modules)
    whole.load_state_dict(state, strict=True)
    return whole.to(a.device)


def finetune_sft(cfg: FinetuneConfig, resume: bool = False, overwrite: bool = False) -> RunSummary:
    """Run an SFT fine-tune end to end and return its summary (metrics, paths)."""
    cfg, why = sft_defaults(cfg)
    session = Session(cfg, resume, overwrite)
    splits = load_sft_splits(cfg.data)
    tokenizer, fmt, model = _build(cfg, session)
    packed = cfg.data.packing and packing_isolates(model)
    if cfg.data.packing and not packed:
        session.say(f"packing: off — {cfg.model.name} ignores the packed-row attention mask, so packed examples would "
                    "see each other; one example per row instead")
    data = _encode(cfg, splits, tokenizer, session, packed)
    cfg, micro = micro_batching(cfg, session.accelerator.device.type, world_size())
    cfg, auto = resolve_auto(cfg, len(data["train"]), model.config.hidden_size, False, world_size())
    cfg = session.resolve(cfg, {**why, **micro, **auto})
    session.write("split.json", json.dumps({n: {"source": s.source, "rows": [c.row for c in s.chats]}
                                            for n, s in splits.items()}))
    session.say(f"train: {len(data['train'].data)} examples in {len(data['train'])} rows "
                f"({'packed' if packed else 'one per row'}), {data['train'].label_tokens:,} answer tokens")
    label_logits = session.lever("label_logits")

    def evaluate(m, split="validation"):
        return evaluate_clm(m, data[split], batch_size=cfg.eval.batch_size, label_logits=label_logits,
                            **session.eval_context())

    result = session.train(model, data["train"], make_objective("sft", label_logits=label_logits), evaluate,
                           metric=cfg.eval.metric, patience=cfg.train.early_stopping_patience,
                           total_steps=total_steps(cfg, len(data["train"])))
    final_model = _final_model(cfg, session, result.model)
    context = {**session.eval_context(), "autocast": None}
    metrics = {n: evaluate_clm(result.model, data[n], batch_size=cfg.eval.batch_size, label_logits=label_logits,
                               **context) for n in ("validation", "test") if n in data}
    max_new = cfg.eval.max_new_tokens or min(256, max(response_lengths(tokenizer, splits["train"].chats)) + 8)
    summary = session.summary("sft", result, metrics)
    if session.is_main:
        scores = final_scores(cfg, final_model, tokenizer, splits, max_new)
        summary = write_sft_outputs(session, final_model, tokenizer, splits, data, summary, scores, fmt, max_new)
    return session.finish(summary)

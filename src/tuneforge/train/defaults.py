"""Auto hyperparameters from the model size and the data size. See docs/defaults.md for how they were chosen."""
from __future__ import annotations

import math

from tuneforge.config import FinetuneConfig
from tuneforge.config.schema import PretrainConfig

TARGET_STEPS = 600  # optimizer steps small data sets get (early stopping usually ends sooner)
MIN_EPOCHS = 3  # what a careful expert uses on GLUE-size data: 1 epoch of SST-2 gave 88.6 dev, 3 epochs more
MAX_AUTO_STEPS = 10_000  # ...unless 3 epochs would exceed this; then as many epochs as fit (at least 1)
MAX_EPOCHS = 20
LARGE_EPOCH_STEPS = 500  # evaluate about this often when an epoch is longer


def auto_learning_rate(hidden_size: int) -> float:
    # Small encoders (MiniLM, hidden 384) want a larger step than BERT-base; large ones a smaller one.
    if hidden_size <= 512:
        return 1e-4
    if hidden_size <= 768:
        return 5e-5
    return 2e-5


def resolve_auto(cfg: FinetuneConfig, n_train: int, hidden_size: int, vocab_extended: bool,
                 world_size: int = 1) -> tuple[FinetuneConfig, dict[str, str]]:
    """Fill every `None` in train/eval with a concrete value; return the new config and why each was chosen."""
    cfg = cfg.model_copy(deep=True)
    t, why = cfg.train, {}
    if t.batch_size is None:
        t.batch_size = 16 if n_train < 2000 else 32
        why["train.batch_size"] = f"{t.batch_size} for {n_train} training rows"
    if t.batch_size % (world_size * t.grad_accum_steps):
        t.batch_size = math.ceil(t.batch_size / (world_size * t.grad_accum_steps)) * world_size * t.grad_accum_steps
        why["train.batch_size"] = f"{t.batch_size}: rounded to a multiple of processes × accumulation"
    steps_per_epoch = max(1, n_train // t.batch_size)
    target = TARGET_STEPS * (2 if vocab_extended else 1)
    if t.epochs is None:
        floor = max(1, min(MIN_EPOCHS, MAX_AUTO_STEPS // steps_per_epoch))
        t.epochs = float(min(MAX_EPOCHS, max(floor, math.ceil(target / steps_per_epoch))))
        why["train.epochs"] = (f"{t.epochs:g}: at least {target} steps and {floor} epoch(s) at {steps_per_epoch} "
                               "steps/epoch (early stopping may end sooner)")
    if t.learning_rate is None:
        t.learning_rate = auto_learning_rate(hidden_size) * (2 if vocab_extended else 1)
        why["train.learning_rate"] = f"{t.learning_rate:g} for hidden size {hidden_size}" + (
            " (doubled: new vocabulary rows must learn from scratch)" if vocab_extended else "")
    if t.early_stopping_patience is None:
        t.early_stopping_patience = 3
        why["train.early_stopping_patience"] = "3 evaluations without improvement"
    e = cfg.eval
    if e.every_steps is None:
        per_epoch = max(1, math.ceil(steps_per_epoch / LARGE_EPOCH_STEPS))
        e.every_steps = math.ceil(steps_per_epoch / per_epoch)
        why["eval.every_steps"] = f"{e.every_steps}: {per_epoch} evaluation(s) per epoch"
    if e.metric == "auto":
        e.metric = "micro_f1" if cfg.data.multi_label else "accuracy"
        why["eval.metric"] = e.metric
    return cfg, why


CONTRASTIVE_MAX_ROWS = 500  # train.contrastive auto: at most this many rows (SST-2: +5.1 points at 500, −4.9 at 2,000)
CONTRASTIVE_PAIRS = 10_000  # at most this many pairs by default: 500 rows get SetFit's 20 iterations' worth halved
CONTRASTIVE_BATCH = 16  # pairs per step (SetFit's default)
CONTRASTIVE_LR = 2e-5  # SetFit's body learning rate
CONTRASTIVE_EVALS = 4  # evaluations over the run (each fits the head on all training rows)


def resolve_contrastive(cfg: FinetuneConfig, n_train: int, unfit: str | None,
                        world_size: int = 1) -> tuple[FinetuneConfig, dict[str, str]]:
    """Decide `train.contrastive` (auto → on or off) and, when on, fill its settings: pairs, batch 16, lr 2e-5, one
    pass over the pairs, no early stopping, 4 evaluations. `unfit`: why the model's head cannot be fitted by
    regression (None: it can). Returns the config and the reasons; on with a reason against it is a user error."""
    from tuneforge.errors import UserError
    from tuneforge.data.pairs import pair_iterations

    cfg = cfg.model_copy(deep=True)
    t, why = cfg.train, {}
    against = unfit or ("multi-label data" if cfg.data.multi_label else None) or (
        f"{world_size} processes (it runs in one)" if world_size > 1 else None)
    if t.contrastive == "on" and against:
        raise UserError(f"train.contrastive: on, but {against}; set train.contrastive=off (end-to-end fine-tuning).")
    if t.contrastive == "auto":
        small = n_train <= CONTRASTIVE_MAX_ROWS
        t.contrastive = "on" if small and not against else "off"
        why["train.contrastive"] = (f"on: {n_train} training rows (≤ {CONTRASTIVE_MAX_ROWS:,}); the encoder is tuned "
                                    "on sentence pairs and the head fitted by logistic regression" if t.contrastive == "on"
                                    else f"off: {against or f'{n_train} training rows (> {CONTRASTIVE_MAX_ROWS:,})'}")
    if t.contrastive == "off":
        return cfg, why
    if t.early_stopping_patience:
        raise UserError(f"train.early_stopping_patience: {t.early_stopping_patience}, but a train.contrastive run keeps "
                        "its last weights and never stops early; leave it unset (or 0), or set train.contrastive=off.")
    if t.contrastive_pairs is None:
        rounds = pair_iterations(n_train, CONTRASTIVE_PAIRS)
        t.contrastive_pairs = 2 * n_train * rounds
        why["train.contrastive_pairs"] = f"{t.contrastive_pairs:,}: a same-label and an other-label pair per row, " \
                                         f"{rounds} time(s) (≤ {CONTRASTIVE_PAIRS:,})"
    if t.batch_size is None:
        t.batch_size = CONTRASTIVE_BATCH * world_size
        why["train.batch_size"] = f"{t.batch_size} pairs (contrastive)"
    if t.learning_rate is None:
        t.learning_rate = CONTRASTIVE_LR
        why["train.learning_rate"] = f"{CONTRASTIVE_LR:g} (contrastive, SetFit's)"
    if t.epochs is None:
        t.epochs = 1.0
        why["train.epochs"] = "1 pass over the pairs (contrastive)"
    if t.early_stopping_patience is None:
        t.early_stopping_patience = 0
        why["train.early_stopping_patience"] = "0: off (contrastive: the few validation rows are too noisy to stop on)"
    if cfg.eval.every_steps is None:
        steps = max(1, math.ceil(t.epochs * max(1, t.contrastive_pairs // t.batch_size)))
        cfg.eval.every_steps = max(1, math.ceil(steps / CONTRASTIVE_EVALS))
        why["eval.every_steps"] = f"{cfg.eval.every_steps}: {CONTRASTIVE_EVALS} evaluations over the pairs"
    return cfg, why


def total_steps(cfg: FinetuneConfig, n_train: int) -> int:
    steps_per_epoch = max(1, n_train // cfg.train.batch_size)
    steps = math.ceil(cfg.train.epochs * steps_per_epoch)
    return min(steps, cfg.train.max_steps) if cfg.train.max_steps else steps


PRETRAIN_BATCH = 32  # blocks: 4k tokens at block 128; many small steps beat few big ones on a short budget
PRETRAIN_EVALS = 10  # held-out evaluations per run when the length is known
PRETRAIN_EVAL_MAX_GAP = 100  # ...and at least this often (a budget-only run has no known length)


def resolve_pretrain_auto(cfg: PretrainConfig, n_blocks: int, hidden_size: int, from_scratch: bool,
                          world_size: int = 1) -> tuple[PretrainConfig, dict[str, str]]:
    """Fill the pretraining `None`s; return the new config and why each was chosen."""
    cfg = cfg.model_copy(deep=True)
    t, why = cfg.train, {}
    if t.batch_size is None:
        t.batch_size = min(PRETRAIN_BATCH, max(1, n_blocks))
        why["train.batch_size"] = f"{t.batch_size} blocks of {cfg.data.block_size} tokens"
    unit = world_size * t.grad_accum_steps
    if t.batch_size % unit:
        t.batch_size = math.ceil(t.batch_size / unit) * unit
        why["train.batch_size"] = f"{t.batch_size}: rounded to a multiple of processes × accumulation"
    if t.epochs is None and not (t.max_steps or t.max_tokens or t.budget_minutes):
        t.epochs = 1.0
        why["train.epochs"] = "1: no max_steps, max_tokens or budget_minutes given"
    if t.learning_rate is None:
        t.learning_rate = _pretrain_learning_rate(cfg.objective, hidden_size, from_scratch)
        why["train.learning_rate"] = f"{t.learning_rate:g} ({cfg.objective}, {'from scratch' if from_scratch else 'continued'}, hidden {hidden_size})"
    steps = pretrain_total_steps(cfg, n_blocks)
    if cfg.eval.every_steps is None:
        cfg.eval.every_steps = max(1, min(PRETRAIN_EVAL_MAX_GAP, math.ceil(steps / PRETRAIN_EVALS))) if steps else PRETRAIN_EVAL_MAX_GAP
        why["eval.every_steps"] = f"{cfg.eval.every_steps}"
    return cfg, why


def _pretrain_learning_rate(objective: str, hidden_size: int, from_scratch: bool) -> float:
    if not from_scratch:  # a trained model moves a little: continued pretraining of either kind
        return 1e-4
    if objective == "clm":
        # Peak rates of published GPT-style runs of the size: Pythia-70M (hidden 512) 1e-3, GPT-3 Small and
        # Pythia-160M (768) 6e-4, GPT-3 Medium (1024) 3e-4.
        return 1e-3 if hidden_size <= 512 else 6e-4 if hidden_size <= 768 else 3e-4
    return 5e-4 if hidden_size <= 512 else 1e-4


def resolve_objective_defaults(cfg: PretrainConfig) -> tuple[PretrainConfig, dict[str, str]]:
    """The objective's own defaults for keys the config leaves unset: a causal LM trained from scratch gets a
    GPT tokenizer (byte-level BPE, <|endoftext|>), keeps case, and no dropout. Keys the user set stay as given;
    a resumed run reads them all from its config.yaml, so they never change mid-run."""
    if cfg.objective != "clm" or not cfg.model.preset:
        return cfg, {}
    cfg = cfg.model_copy(deep=True)
    why = {}
    tok, model = cfg.tokenizer, cfg.model
    if not tok.path and "type" not in tok.model_fields_set:
        tok.type = "gpt"
        why["tokenizer.type"] = "gpt (byte-level BPE, texts end with <|endoftext|>), for --objective clm"
    if not tok.path and "lowercase" not in tok.model_fields_set:
        tok.lowercase = False
        why["tokenizer.lowercase"] = "false: a generative model keeps case"
    if "dropout" not in model.model_fields_set:
        model.dropout = 0.0
        why["model.dropout"] = "0 (GPT-style pretraining on a budget; set model.dropout to change)"
    return cfg, why


def pretrain_total_steps(cfg: PretrainConfig, n_blocks: int) -> int | None:
    """Step bound from epochs and max_steps (None when only tokens or time bound the run)."""
    t = cfg.train
    bounds = [t.max_steps] if t.max_steps else []
    if t.epochs:
        bounds.append(max(1, math.ceil(t.epochs * max(1, n_blocks // t.batch_size))))
    return min(bounds) if bounds else None


# --- translation / seq2seq (encoder-decoder) ------------------------------------------------------------------------
SEQ2SEQ_BATCH_TOKENS = 4096  # source + target tokens per step (padding included): many small steps on a CPU budget
SEQ2SEQ_EVALS_PER_EPOCH_MAX = 4


def seq2seq_vocab_size(n_pairs: int) -> int:
    """Joint tokenizer size for a from-scratch model: small corpora want few, frequent pieces (Multi30k's 29k pairs:
    8,000, as the published small-transformer recipes use 8-10k joint BPE); large ones more."""
    return 8000 if n_pairs < 100_000 else 16000 if n_pairs < 1_000_000 else 32000


def seq2seq_preset(n_pairs: int) -> str:
    """From-scratch size by data size: a small corpus cannot feed a large model in a CPU budget, nor need it."""
    return "mini" if n_pairs < 100_000 else "small" if n_pairs < 1_000_000 else "base"


def resolve_seq2seq_batch(cfg: FinetuneConfig, world_size: int = 1) -> tuple[FinetuneConfig, dict[str, str]]:
    """`train.batch_tokens` (the loop's batches are built from it, before the step count is known)."""
    cfg, why = cfg.model_copy(deep=True), {}
    if cfg.train.batch_tokens is None:
        cfg.train.batch_tokens = SEQ2SEQ_BATCH_TOKENS * world_size
        why["train.batch_tokens"] = f"{cfg.train.batch_tokens} source + target tokens per step (padding included)"
    return cfg, why


def resolve_seq2seq_auto(cfg: FinetuneConfig, n_pairs: int, steps_per_epoch: int, hidden_size: int,
                         from_scratch: bool) -> tuple[FinetuneConfig, dict[str, str]]:
    """Epochs, learning rate, patience and evaluation spacing of a translation/seq2seq run."""
    cfg = cfg.model_copy(deep=True)
    t, e, why = cfg.train, cfg.eval, {}
    if t.epochs is None:
        t.epochs = (30.0 if n_pairs < 100_000 else 10.0 if n_pairs < 1_000_000 else 3.0) if from_scratch else 5.0
        why["train.epochs"] = (f"{t.epochs:g} for {n_pairs:,} pairs ({'from scratch' if from_scratch else 'fine-tuning'}"
                               "; early stopping, max_steps or budget_minutes may end sooner)")
    if t.learning_rate is None:
        # Pre-norm transformers from scratch take large steps (fairseq's IWSLT recipe: 5e-4 at d_model 512);
        # a trained model moves a little.
        t.learning_rate = (1e-3 if hidden_size <= 256 else 7e-4 if hidden_size <= 512 else 5e-4) if from_scratch \
            else 1e-4
        why["train.learning_rate"] = f"{t.learning_rate:g} ({'from scratch' if from_scratch else 'fine-tuning'}, hidden {hidden_size})"
    if t.early_stopping_patience is None:
        t.early_stopping_patience = 5
        why["train.early_stopping_patience"] = "5 evaluations without improvement"
    if e.every_steps is None:
        per_epoch = min(SEQ2SEQ_EVALS_PER_EPOCH_MAX, max(1, math.ceil(steps_per_epoch / LARGE_EPOCH_STEPS)))
        e.every_steps = max(1, math.ceil(steps_per_epoch / per_epoch))
        why["eval.every_steps"] = f"{e.every_steps}: {per_epoch} evaluation(s) per epoch of {steps_per_epoch} steps"
    return cfg, why


def seq2seq_total_steps(cfg: FinetuneConfig, steps_per_epoch: int) -> int:
    steps = math.ceil(cfg.train.epochs * steps_per_epoch)
    return min(steps, cfg.train.max_steps) if cfg.train.max_steps else steps

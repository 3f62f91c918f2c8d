"""Fine-tune a text classifier: data → model choice (auto) → coverage check → model → auto settings → the session's loop → evaluate →
calibrate → final/ (with its model card) and the report (with the TF-IDF baseline beside the transformer)."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import torch
from accelerate.utils import set_seed

from tuneforge.config import FinetuneConfig
from tuneforge.data.coverage import Coverage, measure_coverage
from tuneforge.data.encode import encode_texts
from tuneforge.data.pairs import sentence_pairs
from tuneforge.data.labels import LabelSpace
from tuneforge.data.quality import check_splits
from tuneforge.data.splits import load_splits, split_record
from tuneforge.errors import UserError
from tuneforge.evaluate.stream import evaluate_classifier
from tuneforge.model.build import ParkedTokenizer, load_classifier, load_tokenizer
from tuneforge.model.compact_vocab import compact_vocabulary
from tuneforge.model.choose import choose_encoder, is_auto, release_tokenizers
from tuneforge.model.linear_head import fit_linear_head, head_fits, pooled_vectors
from tuneforge.model.loss import balanced_class_weights
from tuneforge.model.manifest import RunSummary
from tuneforge.model.vocab import extend_vocabulary
from tuneforge.recipes.classifier_outputs import final_evaluation, write_outputs
from tuneforge.train.checkpoint import latest_checkpoint
from tuneforge.train.defaults import resolve_auto, resolve_contrastive, total_steps
from tuneforge.train.objectives import make_objective
from tuneforge.train.runtime import world_size
from tuneforge.train.session import Session


def finetune(cfg: FinetuneConfig, resume: bool = False, overwrite: bool = False) -> RunSummary:
    """Run a fine-tune end to end and return its summary (metrics, paths). `task: sft` goes to recipes/sft.py,
    `task: translation` and `seq2seq` to recipes/translation.py."""
    if cfg.task == "sft":
        from tuneforge.recipes.sft import finetune_sft

        return finetune_sft(cfg, resume, overwrite)
    if cfg.task in ("translation", "seq2seq"):
        if cfg.lora.enabled:
            raise UserError(f"lora: LoRA adapters are for causal LMs (--task sft); --task {cfg.task} trains every weight.")
        from tuneforge.recipes.translation import finetune_translation

        return finetune_translation(cfg, resume, overwrite)
    if cfg.lora.enabled:
        raise UserError("lora: LoRA adapters are for causal LMs (--task sft); a classifier trains every weight.")
    session = Session(cfg, resume, overwrite)
    splits, labels, targets = _load_data(cfg)
    weights = balanced_class_weights(labels.class_counts(targets["train"]), cfg.train.class_weights, labels.names)
    data_check = _quick_check(cfg, splits, session)
    cfg = _choose_model(cfg, splits, session)
    built = _build_model(cfg, splits, labels, session)
    tokenizer, model = built.tokenizer, session.apply_levers(built.model)
    cfg, why_pairs = resolve_contrastive(cfg, len(splits["train"].texts), head_fits(model), world_size())
    cfg, why = resolve_auto(cfg, len(splits["train"].texts), model.config.hidden_size, bool(built.added),
                            world_size())
    cfg = session.resolve(cfg, {**why_pairs, **why})
    session.write("split.json", json.dumps(split_record(splits)))
    encoded = {name: encode_texts(tokenizer, s.texts, cfg.data.max_length, targets[name]) for name, s in splits.items()}
    pad_id = tokenizer.pad_token_id or 0
    compact = _compact_vocab(session, model, encoded, [pad_id, *tokenizer.all_special_ids], resume)
    if compact is not None:
        pad_id = compact.compact_id(pad_id)
    parked, tokenizer, built.tokenizer = ParkedTokenizer(tokenizer), None, None  # its files go into final/

    def evaluate(m, split="validation", details=False, autocast=session.accelerator.autocast):
        context = {**session.eval_context(), "autocast": autocast}
        return evaluate_classifier(session.accelerator.unwrap_model(m), encoded[split], labels.names,
                                   labels.multi_label, batch_size=cfg.eval.batch_size, pad_id=pad_id, details=details,
                                   **context)

    layers = getattr(model.config, "num_hidden_layers", None)
    if cfg.train.contrastive == "on":
        data, objective, in_loop = _contrastive(cfg, session, encoded, pad_id, weights, evaluate, layers)
    else:
        data = session.text_batches(encoded["train"], pad_id, None if labels.multi_label else weights, layers=layers)
        objective = make_objective("classification", multi_label=labels.multi_label, weights=weights)
        in_loop = evaluate
    result = session.train(
        model, data, objective, in_loop, metric=cfg.eval.metric, patience=cfg.train.early_stopping_patience,
        total_steps=total_steps(cfg, len(data)),
        embedding_rows=[pad_id, *(i for row in encoded["train"].input_ids for i in row)],
        keep_last=cfg.train.contrastive == "on")

    # The best weights in fp32, without Accelerate's autocast wrapper, as everything that loads final/ runs them.
    final_model = session.accelerator.unwrap_model(result.model, keep_fp32_wrapper=False)
    final = final_evaluation(cfg, evaluate, final_model, labels, encoded)
    if compact is not None:
        compact.expand(final_model)
    summary = session.summary("classification", result, final.metrics, vocab_added=len(built.added),
                              coverage=built.coverage.summary(), warning=built.warning, data_check=data_check)
    checksum = torch.tensor([weights_checksum(final_model)], device=session.accelerator.device)
    checksums = session.accelerator.gather(checksum).tolist()  # one per process: DDP keeps them equal
    if session.is_main:
        summary = write_outputs(session, final_model, parked, splits, labels, summary, final, checksums)
    return session.finish(summary)


def _contrastive(cfg: FinetuneConfig, session: Session, encoded: dict, pad_id: int, weights, evaluate, layers):
    """`train.contrastive` on (SetFit-style): the loop trains the encoder on sentence pairs of the training rows, and
    each evaluation first fits the head by logistic regression on the training rows' pooled vectors, so every
    checkpoint holds a fitted head. The run keeps its last weights, as SetFit does: on 500 SST-2 rows the best of 4
    evaluations on 25 validation rows scored 0.780 on dev, the last 0.808. Returns (data, objective, evaluate)."""
    train = encoded["train"]
    n_pairs = cfg.train.contrastive_pairs
    pairs = sentence_pairs(train.labels, math.ceil(n_pairs / (2 * len(train))), cfg.train.seed)[:n_pairs]
    session.say(f"contrastive: tuning the encoder on {len(pairs):,} sentence pairs of the {len(train):,} training rows "
                "(same label → similar), the head fitted by logistic regression at each evaluation (train.contrastive)")
    data = session.text_batches(train, pad_id, layers=layers, pairs=pairs)
    balance = None if weights is None else {i: float(w) for i, w in enumerate(weights.tolist())}

    def fit_and_evaluate(m):
        inner = session.accelerator.unwrap_model(m)
        # fp32, as final/ and every prediction run the head: a head fitted on bf16 vectors reads others there.
        vectors = pooled_vectors(inner, train, pad_id, device=session.accelerator.device)
        fit_linear_head(inner, vectors, train.labels, class_weight=balance, seed=cfg.train.seed)
        return evaluate(m)

    return data, make_objective("contrastive"), fit_and_evaluate


VOCAB_ROWS = "vocab_rows.json"  # the run folder's record of the rows a compact_vocab run trains


def _compact_vocab(session: Session, model, encoded: dict, keep_ids: list[int], resume: bool):
    """The compact_vocab lever (model/compact_vocab.py): train the embedding rows the run's texts use. The rows are
    recorded in the run folder; a resumed run must get the same ones (its checkpoints hold that table), and one
    whose checkpoints predate the record holds the full table, so it resumes without compaction."""
    from accelerate.utils import DistributedType

    record = session.run_dir / VOCAB_ROWS
    sharded = session.accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)
    checkpointed = resume and latest_checkpoint(session.run_dir) is not None
    if not session.lever("compact_vocab") or sharded or (checkpointed and not record.is_file()):
        return None
    compact = compact_vocabulary(model, encoded, keep_ids)
    if compact is None:
        return None
    if checkpointed and json.loads(record.read_text(encoding="utf-8")) != compact.ids.tolist():
        raise UserError(f"{session.run_dir}: the data's texts changed since this run started (they use other "
                        "vocabulary rows than its checkpoints hold); resume with the original files, or start a new "
                        "run (--overwrite).")
    session.write(VOCAB_ROWS, json.dumps(compact.ids.tolist()))
    session.say(f"vocabulary: training {len(compact.ids):,} of {compact.vocab_rows:,} embedding rows (the ones these "
                "texts use); final/ keeps them all")
    return compact


def weights_checksum(model) -> float:
    """The sum of every weight in float64, 2²⁰ values at a time: a float64 copy of the 250,002-row embedding
    (`.double()`, or `sum(dtype=torch.float64)`, which casts first) was a 0.77 GB peak at the end of a run."""
    return sum(part.sum(dtype=torch.float64).item() for p in model.parameters()
               for part in p.detach().reshape(-1).split(1 << 20))


def _load_data(cfg: FinetuneConfig):
    """Splits, the label space (from train) and the encoded targets; unseen labels are user errors."""
    splits = load_splits(cfg.data)
    labels = LabelSpace.from_labels(splits["train"].labels, cfg.data.multi_label)
    cfg.data.multi_label = labels.multi_label
    targets = {name: labels.encode(s.labels, s.source) for name, s in splits.items()}
    return splits, labels, targets


def _quick_check(cfg: FinetuneConfig, splits, session: Session) -> dict | None:
    """Exact duplicates, label conflicts and leakage into validation/test: the model-free checks that take
    seconds (near duplicates and suspect labels are left to `tuneforge data check`)."""
    if not cfg.data.check:
        return None
    found = check_splits({n: (s.texts, [json.dumps(x) if isinstance(x, list) else x for x in s.labels])
                          for n, s in splits.items()}, near=False)
    problems = {k: found["problems"][k] for k in ("duplicates", "conflicts", "leakage")}
    if any(problems.values()):
        session.say("data check: " + ", ".join(f"{k} {v}" for k, v in problems.items()) +
                    " (rows; `tuneforge data check` lists them)")
    return problems


def _choose_model(cfg: FinetuneConfig, splits, session: Session) -> FinetuneConfig:
    """`model.name: auto` → the encoder the training text needs (model/choose.py), printed now (before a first-time
    model conversion) and kept with its reason in config.yaml, so a resumed run reads the concrete name back."""
    if not is_auto(cfg.model.name):
        return cfg
    train = splits["train"]
    choice = choose_encoder(train.texts, cfg.model.unk_threshold,
                            source=f"the text column '{cfg.data.text_column}' of {train.source}")
    release_tokenizers()
    cfg = cfg.model_copy(deep=True)
    cfg.model.name, cfg.model.auto_reason = choice.name, choice.reason
    session.say(f"model: {choice.name} (auto: {choice.reason})")
    return cfg


@dataclass
class _Built:
    tokenizer: object
    model: torch.nn.Module
    coverage: Coverage
    warning: str | None  # the tokenizer does not cover this text (None: it does)
    added: list[str]  # tokens added to the vocabulary


def _build_model(cfg: FinetuneConfig, splits, labels: LabelSpace, session: Session) -> _Built:
    """Tokenizer coverage check, then the model — with an extended vocabulary when the tokenizer misses the script."""
    tokenizer = load_tokenizer(cfg.model.name)
    coverage = measure_coverage(tokenizer, splits["train"].texts)
    warning = coverage.warning(cfg.model.name, cfg.model.unk_threshold)
    if warning:
        session.say(f"warning: {warning}")
    set_seed(cfg.train.seed)  # the fresh head's init is part of the science
    model = load_classifier(cfg.model.name, labels)
    extend = cfg.model.extend_vocab == "always" or (cfg.model.extend_vocab == "auto" and warning is not None)
    added = extend_vocabulary(tokenizer, model, coverage.missing, cfg.model.max_new_tokens) if extend else []
    if added:
        after = measure_coverage(tokenizer, splits["train"].texts)
        session.say(f"vocabulary: added {len(added)} tokens; [UNK] rate {coverage.unk_rate:.1%} → {after.unk_rate:.1%}")
    return _Built(tokenizer, model, coverage, warning, added)

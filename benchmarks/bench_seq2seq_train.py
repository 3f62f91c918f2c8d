"""Translation training speed: `tuneforge finetune --task translation` vs Hugging Face `Seq2SeqTrainer` on the same
from-scratch encoder-decoder, Multi30k pairs, tokenizer, token budget per step, optimizer steps and seed, side by
side in one run, per seed (issue 19: tokens/s ≥ 1.3× at the same held-out loss, ±2%).

Usage:  python -m benchmarks.bench_seq2seq_train [--preset mini] [--rows 29000] [--val-rows 0] [--steps 300]
        [--warmup-steps 10] [--batch-tokens 4096] [--max-length 128] [--lr 1e-3] [--label-smoothing 0.1]
        [--vocab-size 8000] [--seeds 42,43,44] [--threads N] [--work DIR]
        [--out benchmarks/results/bench_seq2seq_train.json]
Smoke:  python -m benchmarks.bench_seq2seq_train --smoke --threads 1 --out /tmp/bench_seq2seq_train.json
        (tiny preset, 200 rows, 100 validation pairs, 6 steps, seed 42: about two minutes)

1. Data (parent): a seeded sample of --rows pairs of ../shared/data/multi30k/train.{en,de} and the first --val-rows
   pairs of val.{en,de} (0 = all 1,014), written as line-aligned files; read back with TuneForge's own parallel-data
   reader (`load_parallel_splits`), so both sides train on the same cleaned pairs. One joint tokenizer
   (`train_tokenizer(kind="seq2seq")`, cased, as the recipe trains it) trained once on the training source + target
   text and given to both sides (`model.tokenizer=<folder>`).
2. TuneForge, per seed, in a subprocess: `python -m tuneforge finetune --task translation` with
   `model.preset`, `train.batch_tokens`, `train.max_steps`, one evaluation at the end (held-out loss only:
   `eval.bleu_samples=0`; greedy final decoding, `eval.beams=1`, not timed), no checkpoint averaging, no test split,
   one metrics line per step, fp32, every speed lever at its default (all on).
3. Seq2SeqTrainer, per seed, in a child process: the same model (`build_seq2seq(preset, tokenizer)` after the same
   `set_seed(seed)` the recipe calls, so the same initial weights; eager attention as build_seq2seq gives both sides,
   --trainer-attention sdpa for transformers' default), the same pairs tokenized by the same tokenizer
   (pairs longer than --max-length on either side left out, as TuneForge does), its best settings:
   `DataCollatorForSeq2Seq` (dynamic padding; decoder inputs from the model's own label shift) and
   `train_sampling_strategy="group_by_length"` (transformers 5's name for `group_by_length=True`; it groups by
   source length, `input_ids`), the same learning rate, linear warm-up over the same whole number of steps then
   linear decay to 0, AdamW (its default, fused) with the same weight decay (biases and LayerNorms excluded on both
   sides), clipping at 1.0, `label_smoothing_factor`, fp32, max_steps, no evaluation, no saving.
Batch budget: TuneForge cuts length-grouped batches whose padded size (rows × (longest source + longest target))
stays ≤ --batch-tokens; the Trainer takes a fixed number of sentences per step. The parent builds the very batches
TuneForge will train on (`Seq2SeqBatches` with the seed, the first --steps of them) and sets the Trainer's
per-device batch to round(their mean real tokens ÷ the mean real tokens of a training pair), so both sides consume
the same real tokens per step on average; both measured means are recorded (`mean_real_tokens_per_step`).
Tokens/s: real (non-pad) source + target tokens (EOS included), steady state: the first --warmup-steps steps left
out on both sides (TuneForge: per-step windows of metrics.jsonl; Trainer: tokens counted in the collator, steps
timed by a step-end callback). Ratio = TuneForge ÷ Trainer per seed, and the minimum. Held-out loss: plain
cross-entropy (no label smoothing) per target token on the validation pairs, computed by one function
(`heldout_loss`, below) in a child process for each final model: TuneForge's final/ folder and the Trainer's model;
the relative gap |TuneForge − Trainer| ÷ Trainer per seed (`final_loss_gap`), and the largest.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import (RESULTS, ROOT, SHARED_DATA, add_output_args, environment, guard_output, module_cmd,
                               run_and_write)

TARGETS = {"tokens_per_s_ratio": 1.3, "val_loss_within": 0.02}
MULTI30K = SHARED_DATA / "multi30k"
SRC, TGT = "en", "de"
SMOKE = {"preset": "tiny", "rows": 200, "val_rows": 100, "steps": 6, "warmup_steps": 2, "seeds": "42",
         "vocab_size": 400, "batch_tokens": 1024}


# ----------------------------------------------------------------------------------------------- data (parent)

def _lines(path: Path) -> list[str]:
    """The file's lines split on newlines only (str.splitlines would also split on U+2028 etc. and misalign)."""
    text = path.read_text(encoding="utf-8")
    return text[:-1].split("\n") if text.endswith("\n") else text.split("\n")


def _write_pairs(prefix: Path, src: list[str], tgt: list[str]) -> None:
    for lang, lines in ((SRC, src), (TGT, tgt)):
        Path(f"{prefix}.{lang}").write_text("".join(x + "\n" for x in lines), encoding="utf-8")


def prepare(args, work: Path) -> dict:
    """The sampled train files, the validation files, TuneForge's reading of them (as JSON for the children) and the
    shared tokenizer folder."""
    from tuneforge.config.schema import DataConfig
    from tuneforge.data.parallel import load_parallel_splits
    from tuneforge.data.tokenizer_train import train_tokenizer

    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)
    src, tgt = _lines(MULTI30K / f"train.{SRC}"), _lines(MULTI30K / f"train.{TGT}")
    keep = range(len(src))
    if args.rows and args.rows < len(src):
        keep = sorted(random.Random(args.data_seed).sample(range(len(src)), args.rows))
    _write_pairs(data / "train", [src[i] for i in keep], [tgt[i] for i in keep])
    vsrc, vtgt = _lines(MULTI30K / f"val.{SRC}"), _lines(MULTI30K / f"val.{TGT}")
    n_val = args.val_rows or len(vsrc)
    _write_pairs(data / "val", vsrc[:n_val], vtgt[:n_val])

    cfg = DataConfig(train=str(data / "train"), validation=str(data / "val"), source_lang=SRC, target_lang=TGT,
                     test_fraction=0, max_length=args.max_length)
    splits = load_parallel_splits(cfg)
    train, val = splits["train"], splits["validation"]
    pairs = data / "pairs.json"
    pairs.write_text(json.dumps({"train": {"sources": train.sources, "targets": train.targets},
                                 "validation": {"sources": val.sources, "targets": val.targets}}, ensure_ascii=False),
                     encoding="utf-8")
    tokenizer = train_tokenizer(train.sources + train.targets, kind="seq2seq", vocab_size=args.vocab_size,
                                lowercase=False, strip_accents=False)
    tok_dir = work / "tokenizer"
    tokenizer.save_pretrained(str(tok_dir))
    return {"train_prefix": str(data / "train"), "val_prefix": str(data / "val"), "pairs": str(pairs),
            "tokenizer": str(tok_dir), "tokenizer_size": len(tokenizer),
            "data": {"source": f"{MULTI30K} train.{SRC}/.{TGT} (seeded sample) and val.{SRC}/.{TGT}",
                     "train_lines": len(keep), "train_pairs_read": len(train.sources),
                     "train_dropped": {k: len(v) for k, v in train.dropped.items()},
                     "validation_pairs": len(val.sources), "data_seed": args.data_seed}}


def plan_batches(args, prep: dict, seed: int) -> dict:
    """TuneForge's first --steps batches for `seed` (the recipe's encoding and `Seq2SeqBatches`, length-grouped),
    their mean real and padded tokens, and the Trainer batch in sentences with the same mean real tokens."""
    from transformers import AutoTokenizer

    from tuneforge.data.seq2seq_batches import Seq2SeqBatches, encode_pairs

    tokenizer = AutoTokenizer.from_pretrained(prep["tokenizer"])
    train = json.loads(Path(prep["pairs"]).read_text(encoding="utf-8"))["train"]
    enc = encode_pairs(tokenizer, train["sources"], train["targets"], args.max_length, args.max_length, drop_long=True)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    data = Seq2SeqBatches(enc, pad, args.batch_tokens, grouped=True)
    batches, epoch = [], 0
    while len(batches) < args.steps:
        batches += [b for b in data.batches(0, seed, epoch) if len(b)]
        epoch += 1
    batches = batches[:args.steps]
    src_len = [len(x) for x in enc.source_ids]
    tgt_len = [len(x) for x in enc.target_ids]
    real = [int(sum(src_len[i] + tgt_len[i] for i in b)) for b in batches]
    padded = [len(b) * (max(src_len[i] for i in b) + max(tgt_len[i] for i in b)) for b in batches]
    per_pair = sum(src_len) / len(src_len) + sum(tgt_len) / len(tgt_len)
    mean_real = sum(real) / len(real)
    rows = max(1, round(mean_real / per_pair))
    return {"train_pairs": len(src_len), "too_long": len(enc.too_long), "mean_tokens_per_pair": round(per_pair, 2),
            "tuneforge_mean_real_tokens_per_step": round(mean_real, 1),
            "tuneforge_mean_padded_tokens_per_step": round(sum(padded) / len(padded), 1),
            "tuneforge_mean_rows_per_step": round(sum(len(b) for b in batches) / len(batches), 2),
            "trainer_batch_rows": rows, "trainer_expected_real_tokens_per_step": round(rows * per_pair, 1),
            "steps_per_epoch": data.steps_per_epoch(seed)}


def schedule(args) -> dict:
    """Whole warm-up steps, so that TuneForge's ratio and the Trainer's step count give the same schedule."""
    warmup = max(1, round(args.warmup_ratio * args.steps))
    return {"warmup_lr_steps": warmup, "warmup_ratio": warmup / args.steps}


# ----------------------------------------------------------------------------------------------- the one evaluation

def heldout_loss(model, tokenizer, sources: list[str], targets: list[str], max_length: int,
                 batch_size: int = 64) -> dict:
    """Plain cross-entropy (no label smoothing) per target token of `model` on the pairs: sources and targets cut to
    `max_length` tokens, decoder inputs from the model's own label shift, eval mode, fp32. The same function scores
    both sides' final models."""
    import torch
    import torch.nn.functional as F

    src = tokenizer(sources, truncation=True, max_length=max_length)["input_ids"]
    tgt = tokenizer(text_target=targets, truncation=True, max_length=max_length)["input_ids"]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    order = sorted(range(len(src)), key=lambda i: (len(src[i]), len(tgt[i])))
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for k in range(0, len(order), batch_size):
            idx = order[k:k + batch_size]
            s_max, t_max = max(len(src[i]) for i in idx), max(len(tgt[i]) for i in idx)
            input_ids = torch.tensor([src[i] + [pad] * (s_max - len(src[i])) for i in idx])
            mask = torch.tensor([[1] * len(src[i]) + [0] * (s_max - len(src[i])) for i in idx])
            labels = torch.tensor([tgt[i] + [-100] * (t_max - len(tgt[i])) for i in idx])
            dec = model.prepare_decoder_input_ids_from_labels(labels=labels)
            logits = model(input_ids=input_ids, attention_mask=mask, decoder_input_ids=dec, use_cache=False).logits
            total += float(F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                           ignore_index=-100, reduction="sum"))
            count += int((labels != -100).sum())
    return {"loss": round(total / count, 5), "tokens": count, "pairs": len(src)}


def child_eval(spec_path: str) -> None:
    """Child mode: `heldout_loss` of a saved model folder (TuneForge's final/) on the validation pairs, on eager
    attention as the trained model object was (build_seq2seq's default; a saved folder would load on sdpa)."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    spec = json.loads(Path(spec_path).read_text())
    torch.set_num_threads(spec["threads"])
    tokenizer = AutoTokenizer.from_pretrained(spec["tokenizer"])
    model = AutoModelForSeq2SeqLM.from_pretrained(spec["model"], dtype=torch.float32, attn_implementation="eager")
    val = json.loads(Path(spec["pairs"]).read_text(encoding="utf-8"))["validation"]
    result = heldout_loss(model, tokenizer, val["sources"], val["targets"], spec["max_length"])
    Path(spec["result"]).write_text(json.dumps(result))


# ----------------------------------------------------------------------------------------------- TuneForge

def steady(per_step: list[tuple[int, int, float]], warmup: int) -> dict:
    """tokens/s over steps after `warmup`: per_step holds (step, tokens, seconds)."""
    kept = [(t, s) for step, t, s in per_step if step > warmup]
    tokens, seconds = sum(t for t, _ in kept), sum(s for _, s in kept)
    return {"tokens_per_s": round(tokens / seconds, 1) if seconds else None, "steps": len(kept), "tokens": tokens,
            "seconds": round(seconds, 3)}


def tuneforge_cmd(args, seed: int, prep: dict, run_dir: Path) -> list[str]:
    sched = schedule(args)
    sets = {"data.source_lang": SRC, "data.target_lang": TGT, "data.test_fraction": 0,
            "data.max_length": args.max_length, "model.preset": args.preset, "model.tokenizer": prep["tokenizer"],
            "train.batch_tokens": args.batch_tokens, "train.max_steps": args.steps, "train.epochs": 1000,
            "train.learning_rate": args.lr, "train.warmup_ratio": sched["warmup_ratio"],
            "train.weight_decay": args.weight_decay, "train.max_grad_norm": args.max_grad_norm,
            "train.label_smoothing": args.label_smoothing, "train.seed": seed, "train.early_stopping_patience": 0,
            "train.average_checkpoints": 0, "eval.every_steps": args.steps, "eval.metric": "loss",
            "eval.bleu_samples": 0, "eval.beams": 1, "runtime.precision": "fp32", "runtime.device": "cpu",
            "runtime.threads": args.threads, "runtime.log_every_steps": 1, "runtime.progress": "false"}
    return [sys.executable, "-m", "tuneforge", "finetune", "--task", "translation", "--train", prep["train_prefix"],
            "--validation", prep["val_prefix"], "--output", str(run_dir), "--overwrite",
            *[x for k, v in sets.items() for x in ("--set", f"{k}={v}")]]


def _child(mode: str, spec: dict, spec_path: Path) -> dict:
    spec_path.write_text(json.dumps(spec, indent=2, default=str))
    print(f"$ python -m benchmarks.bench_seq2seq_train --child-{mode} {spec_path}", flush=True)
    t0 = time.time()
    subprocess.run(module_cmd("bench_seq2seq_train", f"--child-{mode}", str(spec_path)), check=True, cwd=ROOT)
    return {"wall_seconds": round(time.time() - t0, 1), **json.loads(Path(spec["result"]).read_text())}


def run_tuneforge(args, seed: int, prep: dict, work: Path) -> dict:
    import yaml

    run_dir = work / f"tuneforge-{seed}"
    cmd = tuneforge_cmd(args, seed, prep, run_dir)
    print("$", " ".join(cmd[2:]), flush=True)
    t0 = time.time()
    proc = subprocess.run(cmd, check=False, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    (work / f"tuneforge-{seed}.log").write_text(proc.stdout)
    if proc.returncode:
        print(proc.stdout[-3000:])
        raise SystemExit(f"tuneforge finetune failed (exit {proc.returncode}); log: {work / f'tuneforge-{seed}.log'}")
    wall = time.time() - t0
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    train = [r for r in lines if "split" not in r]
    per_step = [(r["step"], r["tokens"] - p["tokens"], (r["tokens"] - p["tokens"]) / r["tokens_per_s"])
                for p, r in zip([{"tokens": 0}] + train, train)]
    summary = json.loads((run_dir / "summary.json").read_text())
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    spec = {"model": str(run_dir / "final"), "tokenizer": prep["tokenizer"], "pairs": prep["pairs"],
            "max_length": args.max_length, "threads": args.threads, "result": str(work / f"tuneforge-{seed}-eval.json")}
    ev = _child("eval", spec, work / f"tuneforge-{seed}-eval-spec.json")
    steps = len(train)
    own = ((summary.get("metrics") or {}).get("validation") or {}).get("loss")
    return {"command": " ".join(cmd[2:]), "wall_seconds": round(wall, 1), "steps": summary.get("steps", steps),
            "steady": steady(per_step, args.warmup_steps), "tokens_per_s_whole_run": summary.get("tokens_per_s"),
            "mean_real_tokens_per_step": round(train[-1]["tokens"] / steps, 1) if steps else None,
            "losses": [r["loss"] for r in train], "heldout": ev, "heldout_loss_own_evaluation": own,
            "resolved_train": cfg.get("train"), "levers": (cfg.get("runtime") or {}).get("levers")}


# ----------------------------------------------------------------------------------------------- Seq2SeqTrainer

def run_trainer(args, seed: int, prep: dict, plan: dict, work: Path) -> dict:
    spec = {**{k: v for k, v in vars(args).items() if not k.startswith("child")}, **schedule(args), "seed": seed,
            "tokenizer": prep["tokenizer"], "pairs": prep["pairs"], "batch_rows": plan["trainer_batch_rows"],
            "output_dir": str(work / f"trainer-{seed}"), "result": str(work / f"trainer-{seed}.json")}
    return _child("trainer", spec, work / f"trainer-{seed}-spec.json")


def child_trainer(spec_path: str) -> None:
    """Child mode: Seq2SeqTrainer on the same pairs, model and settings; per-step tokens and times, losses and the
    held-out loss of the trained model go to spec['result']."""
    import torch
    from accelerate.utils import set_seed
    from transformers import (AutoTokenizer, DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments,
                              TrainerCallback)

    from tuneforge.model.seq2seq import build_seq2seq
    from tuneforge.recipes.translation import MAX_POSITION

    spec = json.loads(Path(spec_path).read_text())
    torch.set_num_threads(spec["threads"])
    tokenizer = AutoTokenizer.from_pretrained(spec["tokenizer"])
    pairs = json.loads(Path(spec["pairs"]).read_text(encoding="utf-8"))
    train, cap = pairs["train"], spec["max_length"]
    src = tokenizer(train["sources"])["input_ids"]
    tgt = tokenizer(text_target=train["targets"])["input_ids"]
    features = [{"input_ids": s, "attention_mask": [1] * len(s), "labels": t}
                for s, t in zip(src, tgt) if len(s) <= cap and len(t) <= cap]  # as TuneForge: long pairs left out

    set_seed(spec["seed"])  # what the recipe does right before build_seq2seq: the same initial weights
    model = build_seq2seq(spec["preset"], tokenizer, max_position=max(MAX_POSITION, cap + 2),
                          attention=spec["trainer_attention"])
    ends, tokens, padded = [], [], []

    class StepClock(TrainerCallback):
        def on_train_begin(self, targs, state, control, **kwargs):
            ends.append(time.perf_counter())

        def on_step_end(self, targs, state, control, **kwargs):
            ends.append(time.perf_counter())

    targs = Seq2SeqTrainingArguments(
        output_dir=spec["output_dir"], per_device_train_batch_size=spec["batch_rows"], gradient_accumulation_steps=1,
        max_steps=spec["steps"], learning_rate=spec["lr"], lr_scheduler_type="linear",
        warmup_steps=spec["warmup_lr_steps"], weight_decay=spec["weight_decay"], max_grad_norm=spec["max_grad_norm"],
        label_smoothing_factor=spec["label_smoothing"], train_sampling_strategy="group_by_length",
        seed=spec["seed"], logging_steps=1, save_strategy="no", eval_strategy="no", report_to="none", use_cpu=True,
        bf16=False, fp16=False, dataloader_num_workers=0, disable_tqdm=True, predict_with_generate=False)
    collator = DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100)
    trainer = Seq2SeqTrainer(model=model, args=targs, train_dataset=features, data_collator=collator,
                             processing_class=tokenizer, callbacks=[StepClock()])
    collate = trainer.data_collator

    def counting(examples):
        batch = collate(examples)
        labels = batch["labels"]
        tokens.append(int(batch["attention_mask"].sum()) + int((labels != -100).sum()))
        padded.append(int(batch["input_ids"].numel()) + int(labels.numel()))
        return batch

    trainer.data_collator = counting
    trainer.train()
    steps = len(ends) - 1
    per_step = [(i + 1, tokens[i], ends[i + 1] - ends[i]) for i in range(steps)]
    losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
    val = pairs["validation"]
    ev = heldout_loss(model, tokenizer, val["sources"], val["targets"], cap)
    Path(spec["result"]).write_text(json.dumps({
        "steps": steps, "steady": steady(per_step, spec["warmup_steps"]), "losses": losses, "heldout": ev,
        "batch_rows": spec["batch_rows"], "train_pairs": len(features),
        "mean_real_tokens_per_step": round(sum(tokens[:steps]) / max(1, steps), 1),
        "mean_padded_tokens_per_step": round(sum(padded[:steps]) / max(1, steps), 1),
        "optim": str(trainer.args.optim), "sampler": trainer.args.train_sampling_strategy,
        "attn_implementation": model.config._attn_implementation}, indent=2))


# ----------------------------------------------------------------------------------------------- summary

def summarize(pairs: list[tuple[int, dict, dict, dict]]) -> dict:
    per_seed = []
    for seed, plan, tf, hf in pairs:
        a, b = tf["steady"]["tokens_per_s"], hf["steady"]["tokens_per_s"]
        la, lb = tf["heldout"]["loss"], hf["heldout"]["loss"]
        gap = round(abs(la - lb) / lb, 4) if la is not None and lb else None
        per_seed.append({"seed": seed, "tuneforge_tokens_per_s": a, "trainer_tokens_per_s": b,
                         "ratio": round(a / b, 3) if a and b else None,
                         "tuneforge_val_loss": la, "trainer_val_loss": lb, "val_loss_gap": gap,
                         "final_loss_gap": gap,  # the name benchmarks/table.py shows: here the held-out loss gap
                         "tuneforge_mean_real_tokens_per_step": tf["mean_real_tokens_per_step"],
                         "trainer_mean_real_tokens_per_step": hf["mean_real_tokens_per_step"],
                         "trainer_batch_rows": plan["trainer_batch_rows"]})
    ratios = [r["ratio"] for r in per_seed if r["ratio"] is not None]
    gaps = [r["val_loss_gap"] for r in per_seed if r["val_loss_gap"] is not None]
    met = {"tokens_per_s_ratio": bool(ratios) and min(ratios) >= TARGETS["tokens_per_s_ratio"],
           "val_loss_within": bool(gaps) and max(gaps) <= TARGETS["val_loss_within"]}
    return {"per_seed": per_seed, "ratio_min": min(ratios) if ratios else None,
            "val_loss_gap_max": max(gaps) if gaps else None, "targets": TARGETS, "targets_met": met}


def benchmark(args, work: Path) -> dict:
    prep = prepare(args, work)
    print(f"data: {prep['data']['train_pairs_read']:,} train pairs, {prep['data']['validation_pairs']:,} validation "
          f"pairs; tokenizer {prep['tokenizer_size']:,} pieces", flush=True)
    pairs = []
    for seed in args.seed_list:
        plan = plan_batches(args, prep, seed)
        print(f"seed {seed}: TuneForge's first {args.steps} batches hold {plan['tuneforge_mean_real_tokens_per_step']} "
              f"real tokens on average ({plan['mean_tokens_per_pair']} per pair) → Trainer batch "
              f"{plan['trainer_batch_rows']} sentences", flush=True)
        tf = run_tuneforge(args, seed, prep, work)
        hf = run_trainer(args, seed, prep, plan, work)
        pairs.append((seed, plan, tf, hf))
    summary = summarize(pairs)
    print(f"\ntranslation training, preset {args.preset}, ≤{args.batch_tokens} tokens per TuneForge step, "
          f"{args.steps} steps ({args.warmup_steps} warm-up excluded), fp32, {args.threads} threads")
    for r in summary["per_seed"]:
        print(f"seed {r['seed']}: TuneForge {r['tuneforge_tokens_per_s']} tok/s, Trainer {r['trainer_tokens_per_s']} "
              f"tok/s, ratio {r['ratio']}; held-out loss {r['tuneforge_val_loss']} vs {r['trainer_val_loss']} "
              f"(gap {r['val_loss_gap']}); real tokens/step {r['tuneforge_mean_real_tokens_per_step']} vs "
              f"{r['trainer_mean_real_tokens_per_step']} (batch {r['trainer_batch_rows']})")
    print(f"min ratio {summary['ratio_min']}, largest loss gap {summary['val_loss_gap_max']}; targets met: "
          f"{summary['targets_met']}")
    return {**summary, "data": prep["data"], "tokenizer_size": prep["tokenizer_size"], "schedule": schedule(args),
            "plans": [p[1] for p in pairs],
            "runs": {"tuneforge": [p[2] for p in pairs], "trainer": [p[3] for p in pairs]}}


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    ap.add_argument("--smoke", action="store_true",
                    help="quick check: " + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in SMOKE.items()))
    ap.add_argument("--preset", default="mini",
                    help="encoder-decoder size preset for both sides (tiny, mini, small, base)")
    ap.add_argument("--rows", type=int, default=29000, help="training pairs sampled from Multi30k train (0 = all)")
    ap.add_argument("--val-rows", type=int, default=0, help="validation pairs for the held-out loss (0 = all 1,014)")
    ap.add_argument("--data-seed", type=int, default=13, help="seed of the row sample")
    ap.add_argument("--vocab-size", type=int, default=8000, help="joint tokenizer size (the recipe's for Multi30k)")
    ap.add_argument("--steps", type=int, default=300, help="optimizer steps per run")
    ap.add_argument("--warmup-steps", type=int, default=10, help="first steps left out of steady tokens/s")
    ap.add_argument("--batch-tokens", type=int, default=4096,
                    help="TuneForge's train.batch_tokens: padded source + target tokens per step (recipe default)")
    ap.add_argument("--max-length", type=int, default=128, help="most tokens per side; longer training pairs left out")
    ap.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (the recipe's for mini from scratch)")
    ap.add_argument("--warmup-ratio", type=float, default=0.1, help="share of steps with linear warm-up (rounded to "
                                                                     "whole steps)")
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--max-grad-norm", type=float, default=1.0)
    ap.add_argument("--label-smoothing", type=float, default=0.1)
    ap.add_argument("--trainer-attention", choices=("eager", "sdpa"), default="eager",
                    help="the Trainer model's attention: eager, what build_seq2seq gives TuneForge (default; measured "
                         "equal to sdpa in fp32), or sdpa (transformers' default)")
    ap.add_argument("--seeds", default="42,43,44", help="one TuneForge and one Trainer run per seed")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="torch threads for both")
    ap.add_argument("--work", help="keep the data and run folders here (default: a temp folder)")
    add_output_args(ap, RESULTS / "bench_seq2seq_train.json")
    ap.add_argument("--child-trainer", help=argparse.SUPPRESS)
    ap.add_argument("--child-eval", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.smoke:
        for key, value in SMOKE.items():
            setattr(args, key, value)
    if not (args.child_trainer or args.child_eval) and not 0 <= args.warmup_steps < args.steps:
        ap.error("--warmup-steps must be below --steps")
    args.seed_list = [int(s) for s in args.seeds.split(",") if s.strip()]
    return args


def main() -> None:
    args = parse_args()
    if args.child_trainer:
        child_trainer(args.child_trainer)
        return
    if args.child_eval:
        child_eval(args.child_eval)
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    started = guard_output(args.out, args.allow_dirty)
    result = {"benchmark": "bench_seq2seq_train", "smoke": args.smoke, "preset": args.preset, "rows": args.rows,
              "val_rows": args.val_rows, "steps": args.steps, "warmup_steps_excluded": args.warmup_steps,
              "batch_tokens": args.batch_tokens, "max_length": args.max_length, "learning_rate": args.lr,
              "warmup_ratio": args.warmup_ratio, "weight_decay": args.weight_decay,
              "max_grad_norm": args.max_grad_norm, "label_smoothing": args.label_smoothing,
              "vocab_size": args.vocab_size, "trainer_attention": args.trainer_attention, "precision": "fp32",
              "seeds": args.seed_list, **environment(args.threads)}
    run_and_write(args, result, started, benchmark, "bench-seq2seq-train-")


if __name__ == "__main__":
    main()

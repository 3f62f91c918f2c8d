"""Instruction-tuning (SFT) speed: `tuneforge finetune --task sft` vs TRL's `SFTTrainer` with packing, on the same
model, SST-2 prompt set, LoRA settings, sequence length, batch, steps and seed, side by side in one run, per seed.

Usage:  python -m benchmarks.bench_sft [--model smollm2-135m] [--rows 2000] [--steps 30] [--warmup-steps 5]
        [--seeds 42,43,44] [--max-length 512] [--batch 8] [--lora-rank 8] [--lora-alpha 16] [--full]
        [--precision fp32|bf16] [--threads N] [--work DIR] [--out benchmarks/results/bench_sft.json]
Smoke:  python -m benchmarks.bench_sft --preset tiny --rows 64 --steps 4 --warmup-steps 1 --batch 2
        --max-length 128 --seeds 42 --out /tmp/bench_sft.json
(needs `pip install -e '.[bench]'` for trl)

1. Data: `benchmarks.data.build_instruction_sets`' SST-2 prompts ("Classify the sentiment ... positive or negative"),
   a seeded sample of --rows training rows; 32 dev rows as the (unused for timing) held-out file.
2. TuneForge, per seed, in a subprocess: `python -m tuneforge finetune --task sft --lora ...` with --batch rows of
   --max-length tokens (packed: best-fit decreasing, each example attends only to itself), --steps optimizer steps,
   evaluation only at the end (not timed), one loss line per step, no generation.
3. TRL, per seed, in a child process: `SFTTrainer` on the same rows as conversational prompt/completion pairs
   (completion-only loss, the same chat template), `packing=True` (its default best-fit decreasing strategy, which
   also turns on its padding-free collator), a peft `LoraConfig` with the same rank, alpha, dropout and target
   modules, and the same learning rate, warm-up ratio, weight decay, clipping, linear schedule, batch, max_steps and
   seed; no evaluation, no saving.
Tokens/s, steady state: the first --warmup-steps steps are left out on both sides; tokens are the real (unpadded)
tokens of the packed rows each step consumed (TuneForge: metrics.jsonl per-step windows; TRL: counted in the
collator, timed by a step-end callback). Ratio = TuneForge ÷ TRL tokens/s per seed, with the minimum. Final training
loss: the mean per-step training loss over the last --loss-window steps on each side, and their relative gap.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import RESULTS, ROOT, add_output_args, environment, guard_output, module_cmd, run_and_write

TARGETS = {"tokens_per_s_ratio": 1.3, "final_loss_within": 0.02}


def prepare(args, work: Path) -> dict:
    """The SST-2 prompt set (train sample + 32 dev rows) and, with --preset, a from-scratch model folder."""
    from benchmarks.data.build_instruction_sets import sst2

    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)
    info = sst2(data, args.rows, args.data_seed)
    dev = (data / "sst2_dev.jsonl").read_text(encoding="utf-8").splitlines()[:32]
    (data / "held_out.jsonl").write_text("\n".join(dev) + "\n", encoding="utf-8")
    model = args.model
    if args.preset:
        model = str(_scratch_model(args, work / f"{args.preset}-model"))
    return {"train": str(data / "sst2_train.jsonl"), "held_out": str(data / "held_out.jsonl"), "model": model,
            "sst2": info}


def _scratch_model(args, folder: Path) -> Path:
    """A randomly initialised preset with SmolLM2's tokenizer and chat template (smoke runs)."""
    import torch

    from tuneforge.model.causal import build_causal_lm, load_causal_tokenizer

    tokenizer = load_causal_tokenizer(args.model)
    torch.manual_seed(0)
    build_causal_lm(args.preset, tokenizer, max_position=max(512, args.max_length)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tuneforge_cmd(args, seed: int, prep: dict, run_dir: Path) -> list[str]:
    sets = {"data.max_length": args.max_length, "train.batch_size": args.batch, "train.max_steps": args.steps,
            "train.epochs": 1000, "train.learning_rate": args.lr, "train.seed": seed, "train.warmup_ratio": 0.1,
            "train.weight_decay": 0.01, "train.early_stopping_patience": 0, "eval.every_steps": args.steps + 1,
            "eval.generate_samples": 0, "runtime.precision": args.precision, "runtime.threads": args.threads,
            "runtime.log_every_steps": 1, "runtime.progress": "false"}
    lora = [] if args.full else ["--lora", "--lora-rank", str(args.lora_rank), "--lora-alpha", str(args.lora_alpha),
                                 "--lora-dropout", str(args.lora_dropout)]
    return [sys.executable, "-m", "tuneforge", "finetune", "--task", "sft", "--train", prep["train"],
            "--validation", prep["held_out"], "--test", prep["held_out"], "--model", prep["model"], *lora,
            "--output", str(run_dir), "--overwrite", *[x for k, v in sets.items() for x in ("--set", f"{k}={v}")]]


def steady(per_step: list[tuple[int, int, float]], warmup: int) -> dict:
    """tokens/s over steps after `warmup`: per_step holds (step, tokens, seconds)."""
    kept = [(t, s) for step, t, s in per_step if step > warmup]
    tokens, seconds = sum(t for t, _ in kept), sum(s for _, s in kept)
    return {"tokens_per_s": round(tokens / seconds, 1) if seconds else None, "steps": len(kept),
            "tokens": tokens, "seconds": round(seconds, 2)}


def final_loss(losses: list[float], window: int) -> float | None:
    tail = losses[-window:]
    return round(sum(tail) / len(tail), 5) if tail else None


def run_tuneforge(args, seed: int, prep: dict, work: Path) -> dict:
    import yaml

    run_dir = work / f"tuneforge-{seed}"
    cmd = tuneforge_cmd(args, seed, prep, run_dir)
    print("$", " ".join(cmd[2:]), flush=True)
    t0 = time.time()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    train = [r for r in lines if "split" not in r]
    per_step = [(r["step"], r["tokens"] - p["tokens"], (r["tokens"] - p["tokens"]) / r["tokens_per_s"])
                for p, r in zip([{"tokens": 0}] + train, train)]
    s = json.loads((run_dir / "summary.json").read_text())
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    losses = [r["loss"] for r in train]
    return {"command": " ".join(cmd[2:]), "wall_seconds": round(time.time() - t0, 1), "steps": s["steps"],
            "steady": steady(per_step, args.warmup_steps), "tokens_per_s_whole_run": s["tokens_per_s"],
            "losses": losses, "final_loss": final_loss(losses, args.loss_window),
            "heldout_loss": s["metrics"]["validation"]["loss"], "resolved_train": cfg["train"],
            "levers": cfg["runtime"]["levers"]}


def run_trl(args, seed: int, prep: dict, work: Path) -> dict:
    spec = {**vars(args), "seed": seed, "model_path": prep["model"], "train": prep["train"],
            "output_dir": str(work / f"trl-{seed}"), "result": str(work / f"trl-{seed}.json")}
    spec_path = work / f"trl-{seed}-spec.json"
    spec_path.write_text(json.dumps(spec, indent=2, default=str))
    print("$ python -m benchmarks.bench_sft --child-trl", spec_path, flush=True)
    t0 = time.time()
    subprocess.run(module_cmd("bench_sft", "--child-trl", str(spec_path)), check=True, cwd=ROOT)
    return {"wall_seconds": round(time.time() - t0, 1), **json.loads(Path(spec["result"]).read_text())}


def _trl_dataset(path: str):
    from datasets import Dataset

    rows = [json.loads(x) for x in Path(path).read_text(encoding="utf-8").splitlines() if x.strip()]
    return Dataset.from_list([{"prompt": [{"role": "user", "content": r["prompt"]}],
                               "completion": [{"role": "assistant", "content": r["response"]}]} for r in rows])


def _trl_config(spec: dict):
    """TRL's settings, matched to TuneForge's: packing (TRL's default best-fit decreasing, padding-free), linear
    schedule with a 10% warm-up, AdamW (transformers' default, fused), one loss line per step, no eval, no saving."""
    import torch
    from trl import SFTConfig

    return SFTConfig(
        output_dir=spec["output_dir"], max_length=spec["max_length"], packing=True,
        per_device_train_batch_size=spec["batch"], gradient_accumulation_steps=1, max_steps=spec["steps"],
        learning_rate=spec["lr"], lr_scheduler_type="linear", warmup_steps=0.1, weight_decay=0.01, max_grad_norm=1.0,
        seed=spec["seed"], logging_steps=1, save_strategy="no", eval_strategy="no", report_to="none",
        use_cpu=not torch.cuda.is_available(), bf16=spec["precision"] == "bf16", dataloader_num_workers=0,
        disable_tqdm=True)


def child_trl(spec_path: str) -> None:
    """Child mode: TRL's SFTTrainer on the same rows and settings; per-step tokens, times and losses go to
    spec['result']."""
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, TrainerCallback, set_seed
    from trl import SFTTrainer

    from tuneforge.model.causal import load_causal_tokenizer
    from tuneforge.model.lora import default_targets
    from tuneforge.model.resolve import resolve_model

    spec = json.loads(Path(spec_path).read_text())
    torch.set_num_threads(spec["threads"])
    set_seed(spec["seed"])
    path = resolve_model(spec["model_path"])
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    tokenizer = load_causal_tokenizer(spec["model_path"])
    peft = None if spec["full"] else LoraConfig(
        task_type="CAUSAL_LM", r=spec["lora_rank"], lora_alpha=spec["lora_alpha"], lora_dropout=spec["lora_dropout"],
        target_modules=default_targets(model))
    ends, tokens = [], []

    class StepClock(TrainerCallback):
        def on_step_end(self, targs, state, control, **kwargs):
            ends.append(time.perf_counter())

    config = _trl_config(spec)
    trainer = SFTTrainer(model=model, args=config, train_dataset=_trl_dataset(spec["train"]),
                         processing_class=tokenizer, peft_config=peft, callbacks=[StepClock()])
    collate = trainer.data_collator

    def counting(examples):
        batch = collate(examples)
        mask = batch.get("attention_mask")
        tokens.append(int(mask.sum()) if mask is not None else int(batch["input_ids"].numel()))
        return batch

    trainer.data_collator = counting
    start = time.perf_counter()
    trainer.train()
    bounds = [start] + ends
    per_step = [(i + 1, tokens[i], bounds[i + 1] - bounds[i]) for i in range(len(ends))]
    losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
    Path(spec["result"]).write_text(json.dumps({
        "steps": len(ends), "steady": steady(per_step, spec["warmup_steps"]), "losses": losses,
        "final_loss": final_loss(losses, spec["loss_window"]), "train_rows_packed": len(trainer.train_dataset),
        "optim": str(trainer.args.optim), "padding_free": trainer.padding_free,
        "attn_implementation": model.config._attn_implementation}, indent=2))


def summarize(pairs: list[tuple[int, dict, dict]]) -> dict:
    per_seed = []
    for seed, tf, trl in pairs:
        a, b = tf["steady"]["tokens_per_s"], trl["steady"]["tokens_per_s"]
        gap = abs(tf["final_loss"] - trl["final_loss"]) / trl["final_loss"] if tf["final_loss"] and trl["final_loss"] \
            else None
        per_seed.append({"seed": seed, "tuneforge_tokens_per_s": a, "trl_tokens_per_s": b,
                         "ratio": round(a / b, 3) if a and b else None, "tuneforge_final_loss": tf["final_loss"],
                         "trl_final_loss": trl["final_loss"],
                         "final_loss_gap": round(gap, 4) if gap is not None else None})
    ratios = [r["ratio"] for r in per_seed if r["ratio"] is not None]
    gaps = [r["final_loss_gap"] for r in per_seed if r["final_loss_gap"] is not None]
    met = {"tokens_per_s_ratio": bool(ratios) and min(ratios) >= TARGETS["tokens_per_s_ratio"],
           "final_loss_within": bool(gaps) and max(gaps) <= TARGETS["final_loss_within"]}
    return {"per_seed": per_seed, "ratio_min": min(ratios) if ratios else None,
            "final_loss_gap_max": max(gaps) if gaps else None, "targets": TARGETS, "targets_met": met}


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m", help="causal LM alias or folder (and the tokenizer of --preset)")
    ap.add_argument("--preset", help="smoke: a from-scratch causal preset (tiny, mini) with --model's tokenizer")
    ap.add_argument("--rows", type=int, default=2000, help="SST-2 prompt rows to train on")
    ap.add_argument("--data-seed", type=int, default=13, help="seed of the row sample")
    ap.add_argument("--steps", type=int, default=30, help="optimizer steps per run")
    ap.add_argument("--warmup-steps", type=int, default=5, help="first steps left out of steady tokens/s")
    ap.add_argument("--loss-window", type=int, default=10, help="final loss = mean over this many last steps")
    ap.add_argument("--seeds", default="42,43,44", help="one TuneForge and one TRL run per seed")
    ap.add_argument("--max-length", type=int, default=512, help="tokens per packed row")
    ap.add_argument("--batch", type=int, default=8, help="packed rows per optimizer step")
    ap.add_argument("--lr", type=float, default=2e-4, help="peak learning rate")
    ap.add_argument("--lora-rank", type=int, default=8)
    ap.add_argument("--lora-alpha", type=float, default=16.0)
    ap.add_argument("--lora-dropout", type=float, default=0.05)
    ap.add_argument("--full", action="store_true", help="full fine-tuning instead of LoRA on both sides")
    ap.add_argument("--precision", choices=("bf16", "fp32"), default="fp32",
                    help="fp32 by default: this project's CPU has no native bf16 (emulated bf16 is slower)")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="torch threads for both")
    ap.add_argument("--work", help="keep the data and run folders here (default: a temp folder)")
    add_output_args(ap, RESULTS / "bench_sft.json")
    ap.add_argument("--child-trl", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not args.child_trl and not 0 <= args.warmup_steps < args.steps:
        ap.error("--warmup-steps must be below --steps")
    args.seed_list = [int(s) for s in args.seeds.split(",") if s.strip()]
    return args


def benchmark(args, work: Path) -> dict:
    prep = prepare(args, work)
    pairs = []
    for seed in args.seed_list:
        tf = run_tuneforge(args, seed, prep, work)
        pairs.append((seed, tf, run_trl(args, seed, prep, work)))
    summary = summarize(pairs)
    print(f"\nSFT {'full' if args.full else f'LoRA r{args.lora_rank}'}, {args.batch} rows × {args.max_length}, "
          f"{args.steps} steps ({args.warmup_steps} warm-up excluded), {args.precision}, {args.threads} threads")
    for r in summary["per_seed"]:
        print(f"seed {r['seed']}: TuneForge {r['tuneforge_tokens_per_s']} tok/s, TRL {r['trl_tokens_per_s']} tok/s, "
              f"ratio {r['ratio']}; final loss {r['tuneforge_final_loss']} vs {r['trl_final_loss']} "
              f"(gap {r['final_loss_gap']})")
    return {**summary, "data": prep["sst2"], "model": prep["model"],
            "runs": {"tuneforge": [p[1] for p in pairs], "trl": [p[2] for p in pairs]}}


def main() -> None:
    args = parse_args()
    if args.child_trl:
        child_trl(args.child_trl)
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    started = guard_output(args.out, args.allow_dirty)
    from importlib import metadata

    result = {"benchmark": "bench_sft", "model": args.model, "preset": args.preset, "rows": args.rows,
              "steps": args.steps, "warmup_steps_excluded": args.warmup_steps, "batch_rows": args.batch,
              "max_length": args.max_length, "lora": None if args.full else {
                  "rank": args.lora_rank, "alpha": args.lora_alpha, "dropout": args.lora_dropout},
              "learning_rate": args.lr, "precision": args.precision, "seeds": args.seed_list,
              "trl_version": metadata.version("trl"), **environment(args.threads)}
    run_and_write(args, result, started, benchmark, "bench-sft-")


if __name__ == "__main__":
    main()

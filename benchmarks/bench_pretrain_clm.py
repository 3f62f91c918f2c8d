"""Causal-LM pretraining speed: `tuneforge pretrain --objective clm --preset mini` vs a Hugging Face `Trainer` on
the same model config, packed blocks, batch, steps and seed, side by side in one run, once per seed.

Usage:  python -m benchmarks.bench_pretrain_clm [--preset mini] [--steps 60] [--warmup-steps 10] [--seeds 42,43,44]
        [--precision fp32|bf16] [--threads N] [--plain] [--work DIR] [--out benchmarks/results/bench_pretrain_clm.json]
Smoke:  python -m benchmarks.bench_pretrain_clm --preset tiny --steps 4 --warmup-steps 1 --seeds 42 --wiki-lines 200
        --sst2-rows 500 --out /tmp/bench_clm.json

1. Corpus: WikiText-2 valid lines + SST-2 train sentences in one .txt (bench_pretrain's); a GPT tokenizer
   (byte-level BPE, <|endoftext|>, vocabulary --vocab, cased) trained on it with TuneForge's trainer.
2. TuneForge, per seed, in a subprocess: `python -m tuneforge pretrain --objective clm --preset P --tokenizer tok`,
   batch 32 blocks of 128, --steps optimizer steps, evaluation only before and after, log line every
   --warmup-steps steps. Texts are joined by <|endoftext|> into blocks with no padding; each text attends only to
   itself (document attention: a block-diagonal causal mask, positions restarted per text, no loss across a text
   boundary). `--plain` turns that off (`clm.document_attention=false`): the same computation as the baseline.
3. Baseline, per seed, in a child process: `LlamaForCausalLM` from the same `build_causal_lm(P, tokenizer)` under
   the same seed, a `datasets.Dataset` of the same training blocks (read from TuneForge's packed cache, same
   held-out split), `DataCollatorForLanguageModeling(mlm=False)` (labels = inputs; the model shifts them), plain
   causal attention over the whole block (the stock path), `Trainer` with the same batch, learning rate, warm-up,
   weight decay, clipping and max_steps (read from TuneForge's resolved config.yaml); no evaluation, no saving.
Tokens/s, steady state: the first --warmup-steps steps are excluded on both sides (TuneForge: its metrics.jsonl
windows after the first; Trainer: a callback timestamps every step end). MFU = the training FLOPs per token both
execute (`clm_training_flops`: 3 × the forward's matmuls, the tied LM head on every token, and attention over the
full block, which both the masked and the causal SDPA path compute) × tokens/s ÷ the matmul peak measured in the
same process, the better of before and after training. Ratio = TuneForge ÷ Trainer tokens/s for each seed; the
result reports every ratio and the minimum.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.bench_pretrain import _mfu, steady_tuneforge, write_corpus
from benchmarks.common import (
    RESULTS,
    ROOT,
    add_output_args,
    environment,
    guard_output,
    module_cmd,
    run_and_write,
)

BATCH = 32
BLOCK = 128


def train_tokenizer(corpus: Path, out: Path, vocab: int) -> dict:
    from tuneforge.config.schema import CorpusConfig, TokenizerConfig
    from tuneforge.recipes.tokenizer import train_tokenizer_folder

    return train_tokenizer_folder(CorpusConfig(corpus=[str(corpus)]),
                                  TokenizerConfig(type="gpt", vocab_size=vocab, lowercase=False), out,
                                  model_max_length=1024)


def tuneforge_cmd(args, seed: int, corpus: Path, tokenizer: Path, run_dir: Path, cache: Path) -> list[str]:
    sets = {"train.max_steps": args.steps, "train.batch_size": BATCH, "train.seed": seed,
            "eval.every_steps": args.steps + 1, "runtime.precision": args.precision, "runtime.threads": args.threads,
            "runtime.log_every_steps": args.warmup_steps, "runtime.progress": "false", "data.block_size": BLOCK,
            "data.cache_dir": str(cache), "data.max_validation_blocks": 32, "clm.samples": 0,
            "clm.document_attention": str(not args.plain).lower()}
    return [sys.executable, "-m", "tuneforge", "pretrain", "--objective", "clm", "--corpus", str(corpus),
            "--preset", args.preset, "--tokenizer", str(tokenizer), "--output", str(run_dir), "--overwrite",
            *[x for k, v in sets.items() for x in ("--set", f"{k}={v}")]]


def run_tuneforge(args, seed: int, corpus: Path, tokenizer: Path, work: Path) -> dict:
    import yaml

    run_dir = work / f"tuneforge-{seed}"
    cmd = tuneforge_cmd(args, seed, corpus, tokenizer, run_dir, work / "cache")
    print("$", " ".join(cmd[2:]), flush=True)
    t0 = time.time()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    s = json.loads((run_dir / "summary.json").read_text())
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    steady = steady_tuneforge(run_dir, args.warmup_steps)
    losses = [r["loss"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
              if "split" not in r]
    return {"command": " ".join(cmd[2:]), "wall_seconds": round(time.time() - t0, 1), "steps": s["steps"],
            "tokens": s["tokens"], "tokens_per_s": steady["tokens_per_s"], "steady": steady,
            "tokens_per_s_whole_run": s["tokens_per_s"], "flops_per_token": s["flops_per_token"],
            "peak_flops": s["peak_flops"], "mfu": _mfu(s["flops_per_token"], steady["tokens_per_s"], s["peak_flops"]),
            "last_train_loss": losses[-1] if losses else None, "heldout_perplexity": s["metrics"]["perplexity"],
            "corpus": s["corpus"], "resolved": {"train": cfg["train"], "data": {
                k: cfg["data"][k] for k in ("block_size", "validation_fraction", "max_validation_blocks")}}}


def run_trainer(args, seed: int, tokenizer: Path, tf: dict, work: Path) -> dict:
    """The baseline in a child process (its own threads and memory, as the TuneForge subprocess has)."""
    t = tf["resolved"]["train"]
    spec = {"preset": args.preset, "seed": seed, "tokenizer": str(tokenizer), "cache": tf["corpus"]["cache"],
            "data": tf["resolved"]["data"], "steps": args.steps, "warmup_steps": args.warmup_steps,
            "learning_rate": t["learning_rate"], "warmup_ratio": t["warmup_ratio"], "weight_decay": t["weight_decay"],
            "max_grad_norm": t["max_grad_norm"], "precision": args.precision, "threads": args.threads,
            "output_dir": str(work / f"trainer-{seed}"), "result": str(work / f"trainer-{seed}.json")}
    spec_path = work / f"trainer-{seed}-spec.json"
    spec_path.write_text(json.dumps(spec, indent=2))
    print("$ python -m benchmarks.bench_pretrain_clm --child-trainer", spec_path, flush=True)
    t0 = time.time()
    subprocess.run(module_cmd("bench_pretrain_clm", "--child-trainer", str(spec_path)), check=True, cwd=ROOT)
    return {"spec": spec, "wall_seconds": round(time.time() - t0, 1), **json.loads(Path(spec["result"]).read_text())}


def child_trainer(spec_path: str) -> None:
    """Child mode: build, train and time the Trainer baseline; write its numbers to spec['result']."""
    import torch
    from datasets import Dataset
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainerCallback, TrainingArguments, set_seed

    from tuneforge.data.pack import PackedCorpus
    from tuneforge.model.causal import build_causal_lm, load_causal_tokenizer
    from tuneforge.model.inspect import clm_training_flops
    from tuneforge.train.runtime import measure_matmul_peak

    spec = json.loads(Path(spec_path).read_text())
    torch.set_num_threads(spec["threads"])
    cpu = not torch.cuda.is_available()
    device, dtype = ("cpu" if cpu else "cuda"), (torch.bfloat16 if spec["precision"] == "bf16" else torch.float32)
    tokenizer = load_causal_tokenizer(spec["tokenizer"])
    corpus = PackedCorpus.open(Path(spec["cache"]), spec["data"]["block_size"], None)
    train, _ = corpus.split(spec["data"]["validation_fraction"], spec["data"]["max_validation_blocks"])
    dataset = Dataset.from_dict({"input_ids": corpus.blocks(train)[0].tolist()})
    set_seed(spec["seed"])
    model = build_causal_lm(spec["preset"], tokenizer, 512, 0.0)  # TuneForge's from-scratch defaults for clm
    flops = clm_training_flops(model, spec["data"]["block_size"])
    steps: list[float] = []

    class StepClock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            steps.append(time.perf_counter())

    targs = TrainingArguments(
        output_dir=spec["output_dir"], per_device_train_batch_size=BATCH, max_steps=spec["steps"],
        learning_rate=spec["learning_rate"], warmup_steps=spec["warmup_ratio"],  # a float < 1 is a ratio (v5)
        weight_decay=spec["weight_decay"], max_grad_norm=spec["max_grad_norm"] or 0.0, lr_scheduler_type="linear",
        bf16=spec["precision"] == "bf16", use_cpu=cpu, eval_strategy="no", save_strategy="no",
        logging_strategy="steps", logging_steps=spec["warmup_steps"], report_to="none", dataloader_num_workers=0,
        disable_tqdm=True, seed=spec["seed"])
    peak = measure_matmul_peak(device, dtype)
    trainer = Trainer(model=model, args=targs, train_dataset=dataset, callbacks=[StepClock()],
                      data_collator=DataCollatorForLanguageModeling(tokenizer=tokenizer, mlm=False))
    out = trainer.train()
    peak = max(peak, measure_matmul_peak(device, dtype))
    losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
    Path(spec["result"]).write_text(json.dumps({
        **trainer_numbers(spec, out.metrics, steps, flops, peak), "last_train_loss": losses[-1] if losses else None,
        "optim": str(trainer.args.optim), "train_blocks": len(dataset), "device": device,
        "attn_implementation": model.config._attn_implementation}, indent=2))


def trainer_numbers(spec: dict, metrics: dict, steps: list[float], flops: float, peak: float) -> dict:
    s, w, per_step = spec["steps"], spec["warmup_steps"], BATCH * spec["data"]["block_size"]
    steady = None
    if len(steps) >= s > w:  # from the end of step w to the end of step s, as TuneForge's windows after the first
        seconds = steps[s - 1] - steps[w - 1]
        steady = {"tokens_per_s": round((s - w) * per_step / seconds, 1), "steps": s - w, "seconds": round(seconds, 2)}
    tps = steady["tokens_per_s"] if steady else None
    return {"steps": len(steps), "tokens": s * per_step, "tokens_per_s": tps, "steady": steady,
            "tokens_per_s_whole_run": round(s * per_step / metrics["train_runtime"], 1), "flops_per_token": flops,
            "peak_flops": peak, "mfu": _mfu(flops, tps, peak)}


def summarize(pairs: list[tuple[int, dict, dict]]) -> dict:
    per_seed = []
    for seed, tf, hf in pairs:
        ratio = round(tf["tokens_per_s"] / hf["tokens_per_s"], 3) if tf["tokens_per_s"] and hf["tokens_per_s"] else None
        per_seed.append({"seed": seed, "tuneforge_tokens_per_s": tf["tokens_per_s"],
                         "trainer_tokens_per_s": hf["tokens_per_s"], "ratio": ratio, "tuneforge_mfu": tf["mfu"],
                         "trainer_mfu": hf["mfu"], "tuneforge_last_loss": tf["last_train_loss"],
                         "trainer_last_loss": hf["last_train_loss"]})
    ratios = [r["ratio"] for r in per_seed if r["ratio"] is not None]
    return {"per_seed": per_seed, "ratio_min": min(ratios) if ratios else None,
            "ratio_max": max(ratios) if ratios else None}


def _pct(x: float | None) -> str:
    return f"{x:.1%}" if x is not None else "n/a"


def print_table(summary: dict, args) -> None:
    mode = "plain causal blocks" if args.plain else "document attention"
    print(f"\n{args.preset} clm, batch {BATCH} × {BLOCK}, {args.steps} steps ({args.warmup_steps} warm-up excluded), "
          f"{args.precision}, {args.threads} threads, TuneForge with {mode}")
    print(f"{'seed':>5} {'TuneForge tok/s':>16} {'Trainer tok/s':>14} {'ratio':>6} {'MFU TF':>7} {'MFU HF':>7}")
    for r in summary["per_seed"]:
        print(f"{r['seed']:>5} {r['tuneforge_tokens_per_s'] or 0:>16.0f} {r['trainer_tokens_per_s'] or 0:>14.0f} "
              f"{r['ratio'] or 0:>6.2f} {_pct(r['tuneforge_mfu']):>7} {_pct(r['trainer_mfu']):>7}")
    print(f"TuneForge ÷ Trainer tokens/s, minimum over seeds: {summary['ratio_min']}")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="mini", help="GPT-style preset (tiny, mini, small, medium, base)")
    ap.add_argument("--steps", type=int, default=60, help="optimizer steps per run (batch 32 blocks of 128)")
    ap.add_argument("--warmup-steps", type=int, default=10, help="first steps left out of steady tokens/s")
    ap.add_argument("--seeds", default="42,43,44", help="one TuneForge and one Trainer run per seed, alternated")
    ap.add_argument("--precision", choices=("bf16", "fp32"), default="fp32",
                    help="fp32 by default: this project's CPU has no native bf16 (emulated bf16 is slower)")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="torch threads for both")
    ap.add_argument("--plain", action="store_true", help="TuneForge without document attention (the baseline's "
                    "computation exactly)")
    ap.add_argument("--vocab", type=int, default=8000, help="GPT tokenizer vocabulary")
    ap.add_argument("--wiki-lines", type=int, default=0, help="first lines of wiki.valid.raw (0 = all 3,760)")
    ap.add_argument("--sst2-rows", type=int, default=0, help="first SST-2 train sentences (0 = all 67,349)")
    ap.add_argument("--work", help="keep the corpus, tokenizer and run folders here (default: a temp folder)")
    add_output_args(ap, RESULTS / "bench_pretrain_clm.json")
    ap.add_argument("--child-trainer", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not args.child_trainer and not 1 <= args.warmup_steps < args.steps:
        ap.error("--warmup-steps must be at least 1 and below --steps")
    args.seed_list = [int(s) for s in args.seeds.split(",") if s.strip()]
    return args


def benchmark(args, work: Path) -> dict:
    corpus = write_corpus(work / "corpus.txt", args.wiki_lines, args.sst2_rows)
    tokenizer = train_tokenizer(Path(corpus["file"]), work / "tokenizer", args.vocab)
    pairs = []
    for seed in args.seed_list:
        tf = run_tuneforge(args, seed, Path(corpus["file"]), work / "tokenizer", work)
        pairs.append((seed, tf, run_trainer(args, seed, work / "tokenizer", tf, work)))
    summary = summarize(pairs)
    print_table(summary, args)
    corpus.update(tokenizer_vocab=tokenizer["vocab_size"], packed=pairs[0][1]["corpus"])
    return {**summary, "corpus": corpus,
            "runs": {"tuneforge": [p[1] for p in pairs], "trainer": [p[2] for p in pairs]}}


def main() -> None:
    args = parse_args()
    if args.child_trainer:
        child_trainer(args.child_trainer)
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    started = guard_output(args.out, args.allow_dirty)
    result = {"benchmark": "bench_pretrain_clm", "preset": args.preset, "precision": args.precision,
              "steps": args.steps, "warmup_steps_excluded": args.warmup_steps, "batch_size": BATCH,
              "block_size": BLOCK, "seeds": args.seed_list, "document_attention": not args.plain,
              **environment(args.threads)}
    run_and_write(args, result, started, benchmark, "bench-pretrain-clm-")


if __name__ == "__main__":
    main()

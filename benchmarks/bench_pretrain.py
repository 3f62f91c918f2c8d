"""MLM pretraining speed: `tuneforge pretrain --preset mini` vs a Hugging Face `Trainer` on the same packed blocks.

Usage:  python -m benchmarks.bench_pretrain [--steps 60] [--precision bf16|fp32] [--warmup-steps 10] [--repeats 1]
        [--threads N] [--work DIR] [--out benchmarks/results/bench_pretrain.json] [--allow-dirty]
Quick:  python -m benchmarks.bench_pretrain --steps 30

1. Corpus: WikiText-2 valid lines (--wiki-lines, 0 = all) + SST-2 train sentences (--sst2-rows, 0 = all) in one
   .txt; a WordPiece tokenizer (vocabulary 8000) trained on it with TuneForge's tokenizer trainer.
2. TuneForge: `python -m tuneforge pretrain --preset mini` in a subprocess: batch 32, --steps optimizer steps, no
   evaluation before the end, log line every --warmup-steps steps. It cleans, tokenizes and packs the corpus into
   blocks of 128 ([CLS] + 127 tokens, no padding) and runs the MLM head only on the masked tokens (SparseMLM).
3. Baseline, in a child process: `BertForMaskedLM` from the same `build_mlm("mini", tokenizer)` and seed, a
   `datasets.Dataset` of the same training blocks (input_ids read from TuneForge's packed cache, same held-out
   split), `DataCollatorForLanguageModeling(mlm_probability=0.15)`, `Trainer` with the same batch, learning rate,
   warm-up, weight decay, clipping and max_steps (read from TuneForge's resolved config.yaml); no evaluation,
   no saving, report_to none, 0 data-loader workers. It computes the MLM head on all 128 positions: the stock path.
Tokens/s, steady state: both exclude the first --warmup-steps steps. TuneForge: its metrics.jsonl training lines
after the first (each line covers the steps since the previous one; evaluation is outside them). Trainer: a
callback timestamps every step end; (steps - warm-up) × 32 × 128 ÷ (t[last] - t[warm-up]). Whole-run tokens/s
(TuneForge's summary.json, Trainer's train_runtime) are reported beside them.
MFU = 6 × non-embedding parameters × tokens/s ÷ the matmul peak measured in the same process, in the compute
dtype (`measure_matmul_peak`, the better of a measurement before and after training, as TuneForge does).
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import (
    RESULTS,
    ROOT,
    SHARED_DATA,
    add_output_args,
    environment,
    guard_output,
    module_cmd,
    read_sst2,
    run_and_write,
)

BATCH = 32
BLOCK = 128
SEED = 42
NOTES = ("TuneForge runs the MLM head only on masked positions (SparseMLM) and packs without padding; the Trainer "
         "baseline computes the head on all positions (the stock BertForMaskedLM path). MFU counts 6 × non-embedding "
         "parameters per token for both, i.e. the same useful work, whatever each computes on top.")


def write_corpus(path: Path, wiki_lines: int, sst2_rows: int) -> dict:
    """WikiText-2 valid lines then SST-2 train sentences, one text per line."""
    wiki = (SHARED_DATA / "wikitext2" / "wiki.valid.raw").read_text(encoding="utf-8").splitlines()
    wiki = wiki[:wiki_lines] if wiki_lines else wiki
    sst2 = read_sst2("train", sst2_rows or None)[0]
    path.write_text("\n".join(line.strip() for line in [*wiki, *sst2] if line.strip()) + "\n", encoding="utf-8")
    return {"file": str(path), "wikitext2_valid_lines": len(wiki), "sst2_train_sentences": len(sst2)}


def train_tokenizer(corpus: Path, out: Path) -> dict:
    from tuneforge.config.schema import CorpusConfig, TokenizerConfig
    from tuneforge.recipes.tokenizer import train_tokenizer_folder

    return train_tokenizer_folder(CorpusConfig(corpus=[str(corpus)]), TokenizerConfig(vocab_size=8000), out,
                                  model_max_length=512)


def tuneforge_cmd(args, corpus: Path, tokenizer: Path, run_dir: Path, cache: Path) -> list[str]:
    sets = {"train.max_steps": args.steps, "train.batch_size": BATCH, "train.seed": SEED,
            "eval.every_steps": args.steps + 1, "runtime.precision": args.precision, "runtime.threads": args.threads,
            "runtime.log_every_steps": args.warmup_steps, "runtime.progress": "false",
            "data.block_size": BLOCK, "data.cache_dir": str(cache), "data.max_validation_blocks": 64}
    return [sys.executable, "-m", "tuneforge", "pretrain", "--corpus", str(corpus), "--preset", "mini",
            "--tokenizer", str(tokenizer), "--output", str(run_dir), "--overwrite",
            *[x for k, v in sets.items() for x in ("--set", f"{k}={v}")]]


def steady_tuneforge(run_dir: Path, warmup_steps: int) -> dict:
    """Tokens/s over the metrics.jsonl training windows after the first one (the first warmup_steps steps)."""
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    train = [r for r in rows if "tokens_per_s" in r and "split" not in r]
    windows = [(r["tokens"] - prev["tokens"], r["tokens_per_s"]) for prev, r in itertools.pairwise(train)]
    if not windows or train[0]["step"] != warmup_steps:
        return {"tokens_per_s": None, "windows": len(windows)}
    tokens, seconds = sum(t for t, _ in windows), sum(t / tps for t, tps in windows)
    return {"tokens_per_s": round(tokens / seconds, 1), "steps": train[-1]["step"] - train[0]["step"],
            "seconds": round(seconds, 2), "windows": len(windows)}


def run_tuneforge(args, corpus: Path, tokenizer: Path, work: Path, k: int) -> dict:
    import yaml

    run_dir = work / f"tuneforge-{k}"
    cmd = tuneforge_cmd(args, corpus, tokenizer, run_dir, work / "cache")
    print("$", " ".join(cmd[2:]), flush=True)
    t0 = time.time()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    wall = time.time() - t0
    s = json.loads((run_dir / "summary.json").read_text())
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    steady = steady_tuneforge(run_dir, args.warmup_steps)
    n6, peak = s["flops_per_token"], s["peak_flops"]  # executed FLOPs per token (MLM head on masked tokens only)
    return {"command": " ".join(cmd[2:]), "wall_seconds": round(wall, 1), "steps": s["steps"], "tokens": s["tokens"],
            "tokens_per_s_whole_run": s["tokens_per_s"], "train_seconds": s["train_seconds"],
            "tokens_per_s": steady["tokens_per_s"], "steady": steady, "flops_per_token_6n": n6,
            "peak_flops": peak, "mfu": _mfu(n6, steady["tokens_per_s"], peak), "mfu_whole_run": s["mfu"],
            "final_loss": s["metrics"]["loss"], "corpus": s["corpus"], "resolved": {
                "train": cfg["train"], "data": {k2: cfg["data"][k2] for k2 in ("block_size", "validation_fraction",
                                                                                "max_validation_blocks")},
                "mlm": cfg["mlm"]}}


def _mfu(flops_6n: float, tokens_per_s: float | None, peak: float) -> float | None:
    return round(flops_6n * tokens_per_s / peak, 4) if tokens_per_s and peak else None


def run_trainer(args, tokenizer: Path, tf: dict, work: Path, k: int) -> dict:
    """The baseline in a child process (its own threads and memory, as the TuneForge subprocess has)."""
    t = tf["resolved"]["train"]
    spec = {"tokenizer": str(tokenizer), "cache": tf["corpus"]["cache"], "data": tf["resolved"]["data"],
            "mask_rate": tf["resolved"]["mlm"]["mask_rate"], "steps": args.steps, "warmup_steps": args.warmup_steps,
            "learning_rate": t["learning_rate"], "warmup_ratio": t["warmup_ratio"], "weight_decay": t["weight_decay"],
            "max_grad_norm": t["max_grad_norm"], "precision": args.precision, "threads": args.threads,
            "output_dir": str(work / f"trainer-{k}"), "result": str(work / f"trainer-{k}.json")}
    spec_path = work / f"trainer-{k}-spec.json"
    spec_path.write_text(json.dumps(spec, indent=2))
    cmd = module_cmd("bench_pretrain", "--child-trainer", str(spec_path))
    print("$ python -m benchmarks.bench_pretrain --child-trainer", spec_path, flush=True)
    t0 = time.time()
    subprocess.run(cmd, check=True, cwd=ROOT)
    result = json.loads(Path(spec["result"]).read_text())
    return {"command": "python -m benchmarks.bench_pretrain --child-trainer SPEC", "spec": spec,
            "wall_seconds": round(time.time() - t0, 1), **result}


def trainer_dataset(spec: dict, tokenizer):
    """TuneForge's training blocks ([CLS] + 127 tokens each) as a `datasets.Dataset` of input_ids."""
    from datasets import Dataset

    from tuneforge.data.pack import PackedCorpus

    corpus = PackedCorpus.open(Path(spec["cache"]), spec["data"]["block_size"], tokenizer.cls_token_id)
    train, _ = corpus.split(spec["data"]["validation_fraction"], spec["data"]["max_validation_blocks"])
    ids, _ = corpus.blocks(train)
    return Dataset.from_dict({"input_ids": ids.tolist()})


def trainer_args(spec: dict, cpu: bool):
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=spec["output_dir"], per_device_train_batch_size=BATCH, max_steps=spec["steps"],
        learning_rate=spec["learning_rate"], warmup_steps=spec["warmup_ratio"],  # a float < 1 is a ratio (v5)
        weight_decay=spec["weight_decay"], max_grad_norm=spec["max_grad_norm"] or 0.0, lr_scheduler_type="linear",
        bf16=spec["precision"] == "bf16", use_cpu=cpu, eval_strategy="no", save_strategy="no",
        logging_strategy="no", report_to="none", dataloader_num_workers=0, disable_tqdm=True, seed=SEED)


def child_trainer(spec_path: str) -> None:
    """Child mode: build, train and time the Trainer baseline; write its numbers to spec['result']."""
    import torch
    from transformers import (
        DataCollatorForLanguageModeling,
        Trainer,
        TrainerCallback,
        set_seed,
    )

    from tuneforge.model.build import load_tokenizer
    from tuneforge.model.inspect import non_embedding_params
    from tuneforge.model.mlm import build_mlm
    from tuneforge.train.runtime import measure_matmul_peak

    spec = json.loads(Path(spec_path).read_text())
    torch.set_num_threads(spec["threads"])
    cpu = not torch.cuda.is_available()
    device, dtype = ("cpu" if cpu else "cuda"), (torch.bfloat16 if spec["precision"] == "bf16" else torch.float32)
    tokenizer = load_tokenizer(spec["tokenizer"])
    dataset = trainer_dataset(spec, tokenizer)
    set_seed(SEED)
    model = build_mlm("mini", tokenizer)
    n6 = 6.0 * non_embedding_params(model)
    steps = []

    class StepClock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            steps.append(time.perf_counter())

    collator = DataCollatorForLanguageModeling(tokenizer=tokenizer, mlm_probability=spec["mask_rate"])
    peak = measure_matmul_peak(device, dtype)
    trainer = Trainer(model=model, args=trainer_args(spec, cpu), train_dataset=dataset, data_collator=collator,
                      callbacks=[StepClock()])
    out = trainer.train()
    peak = max(peak, measure_matmul_peak(device, dtype))
    Path(spec["result"]).write_text(json.dumps(trainer_numbers(spec, out.metrics, steps, n6, peak, {
        "torch_threads_after": torch.get_num_threads(), "optimizer": type(trainer.optimizer).__name__,
        "optim": str(trainer.args.optim), "train_blocks": len(dataset), "device": device,
        "mixed_precision": str(trainer.accelerator.mixed_precision)}), indent=2))


def trainer_numbers(spec: dict, metrics: dict, steps: list[float], n6: float, peak: float, extra: dict) -> dict:
    s, w, per_step = spec["steps"], spec["warmup_steps"], BATCH * spec["data"]["block_size"]
    whole = s * per_step / metrics["train_runtime"]
    steady = None
    if len(steps) >= s > w:  # from the end of step w to the end of step s, as TuneForge's windows after the first
        seconds = steps[s - 1] - steps[w - 1]
        steady = {"tokens_per_s": round((s - w) * per_step / seconds, 1), "steps": s - w, "seconds": round(seconds, 2)}
    tps = steady["tokens_per_s"] if steady else None
    return {"steps": len(steps), "tokens": s * per_step, "train_runtime": metrics["train_runtime"],
            "tokens_per_s_whole_run": round(whole, 1), "tokens_per_s": tps, "steady": steady,
            "flops_per_token_6n": n6, "peak_flops": peak, "mfu": _mfu(n6, tps, peak),
            "mfu_whole_run": _mfu(n6, whole, peak), "train_loss": metrics.get("train_loss"), **extra}


def median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(tf_runs: list[dict], hf_runs: list[dict]) -> dict:
    def side(runs: list[dict]) -> dict:
        keys = ("tokens_per_s", "tokens_per_s_whole_run", "mfu", "mfu_whole_run", "peak_flops")
        return {k: median([r[k] for r in runs]) for k in keys}

    tf, hf = side(tf_runs), side(hf_runs)
    ratio = (lambda k: round(tf[k] / hf[k], 3) if tf[k] and hf[k] else None)
    ratios = {"tokens_per_s_vs_trainer": ratio("tokens_per_s"),
              "tokens_per_s_whole_run_vs_trainer": ratio("tokens_per_s_whole_run"), "mfu_vs_trainer": ratio("mfu")}
    met = {"tokens_per_s_ge_1.3x_trainer": bool(ratios["tokens_per_s_vs_trainer"]
                                                and ratios["tokens_per_s_vs_trainer"] >= 1.3)}
    return {"ratios": ratios, "targets_met": met, "tuneforge": tf, "trainer": hf}


def print_table(summary: dict, args) -> None:
    print(f"\nmini MLM, batch {BATCH} × {BLOCK}, {args.steps} steps ({args.warmup_steps} warm-up excluded), "
          f"{args.precision}, {args.threads} threads")
    print(f"{'':<11} {'tokens/s':>9} {'whole run':>10} {'MFU':>6} {'peak GFLOP/s':>13}")
    for name in ("tuneforge", "trainer"):
        r = summary[name]
        mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "n/a"
        print(f"{name:<11} {r['tokens_per_s'] or 0:>9.0f} {r['tokens_per_s_whole_run'] or 0:>10.0f} {mfu:>6} "
              f"{(r['peak_flops'] or 0) / 1e9:>13.1f}")
    print(f"TuneForge ÷ Trainer tokens/s: {summary['ratios']['tokens_per_s_vs_trainer']} "
          f"(target ≥ 1.3: {summary['targets_met']['tokens_per_s_ge_1.3x_trainer']})")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60, help="optimizer steps per run (batch 32 blocks of 128)")
    ap.add_argument("--warmup-steps", type=int, help="first steps left out of steady tokens/s (default: "
                    "10, or a third of --steps when that is fewer; at least 1)")
    ap.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    ap.add_argument("--repeats", type=int, default=1, help="TuneForge and Trainer runs, alternated; medians")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="torch threads for both")
    ap.add_argument("--wiki-lines", type=int, default=0, help="first lines of wiki.valid.raw (0 = all 3,760)")
    ap.add_argument("--sst2-rows", type=int, default=0, help="first SST-2 train sentences (0 = all 67,349)")
    ap.add_argument("--work", help="keep the corpus, tokenizer and run folders here (default: a temp folder)")
    add_output_args(ap, RESULTS / "bench_pretrain.json")
    ap.add_argument("--child-trainer", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.warmup_steps is None:
        args.warmup_steps = min(10, max(1, args.steps // 3))
    if not args.child_trainer and not 1 <= args.warmup_steps < args.steps:
        ap.error("--warmup-steps must be at least 1 and below --steps")
    return args


def benchmark(args, work: Path) -> dict:
    corpus = write_corpus(work / "corpus.txt", args.wiki_lines, args.sst2_rows)
    tokenizer = train_tokenizer(Path(corpus["file"]), work / "tokenizer")
    tf_runs, hf_runs = [], []
    for k in range(args.repeats):
        tf_runs.append(run_tuneforge(args, Path(corpus["file"]), work / "tokenizer", work, k))
        hf_runs.append(run_trainer(args, work / "tokenizer", tf_runs[-1], work, k))
    summary = summarize(tf_runs, hf_runs)
    print_table(summary, args)
    corpus.update(tokenizer_vocab=tokenizer["vocab_size"], packed=tf_runs[0]["corpus"])
    return {**summary, "corpus": corpus, "runs": {"tuneforge": tf_runs, "trainer": hf_runs}}


def main() -> None:
    args = parse_args()
    if args.child_trainer:
        child_trainer(args.child_trainer)
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    started = guard_output(args.out, args.allow_dirty)
    result = {"benchmark": "bench_pretrain", "preset": "mini", "precision": args.precision, "steps": args.steps,
              "warmup_steps_excluded": args.warmup_steps, "batch_size": BATCH, "block_size": BLOCK,
              "repeats": args.repeats, **environment(args.threads), "notes": NOTES}
    run_and_write(args, result, started, benchmark, "bench-pretrain-")


if __name__ == "__main__":
    main()

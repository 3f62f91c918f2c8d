"""TuneForge fine-tuning vs the Hugging Face Trainer on SST-2: throughput, memory, accuracy, MFU (issue 4).

Usage:
    python benchmarks/bench_finetune.py                          # full: 4,000 train rows, 1 epoch, dev = 872 rows
    python benchmarks/bench_finetune.py --train-rows 1000        # quick (what `make bench` runs)
    python benchmarks/bench_finetune.py --train-rows 0           # all 67,349 train rows
    python benchmarks/bench_finetune.py --train-rows 64 --dev-rows 64 --eval-rows 100,300 --tag smoke
    python benchmarks/bench_finetune.py --seeds 42,43,44 --precision bf16   # 3 seeds; every run in bf16 autocast

Three runs with the same rows, hyperparameters and seed (max_length 128, batch 32, lr 1e-4, warm-up 0.1, weight
decay 0.01, seed 42, fp32, CPU, same thread count, no evaluation or checkpoint during training):
  tuneforge          `python -m tuneforge finetune` (run in-process by a child of this script, the same entry point)
  trainer-runglue    HF Trainer as run_glue.py does by default: pad every row to 128, default_data_collator
  trainer-strongest  HF Trainer with dynamic padding (DataCollatorWithPadding), train_sampling_strategy=
                     "group_by_length", dataloader_num_workers=0
Every run is its own child process, so its peak RSS (ru_maxrss) is its own. The order rotates per repeat
(`--repeats K`, medians reported). With `--seeds a,b,c` repeat k uses seed k (every run the same seed), speeds
are medians and accuracies are means over the seeds: one seed's accuracy on 872 dev rows moves by about a point
with the batch order alone, more than the 0.5-point target. `--precision bf16` runs all three in bf16 autocast
(TuneForge runtime.precision=bf16, Trainer bf16=True); the default is fp32 for all.
All runs drop the last partial batch, so all do floor(rows / 32) steps per epoch.
TuneForge's validation file is 128 SST-2 train rows outside the subset (the Trainers use none); with
eval.every_steps beyond the run and early_stopping_patience=0 its loop still evaluates (and checkpoints) once, at
the final step, so "best" = final weights. That evaluation, TuneForge's closing validation/dev evaluation, the
Trainers' dev prediction and all loading/tokenizing are outside the train seconds (TuneForge: summary.json
train_seconds; Trainer: train_result.metrics["train_runtime"]).

Throughput numerators are the same for all runs: train rows × epochs (samples/s) and the sum of unpadded token
lengths of the train rows × epochs (real tokens/s). MFU = 6 × non-embedding params × TuneForge real tokens/s ÷ the
matmul peak of the run precision (fp32 or bf16) measured in the same run (best of a measurement before and after the runs).
Memory check: `tuneforge evaluate` of the TuneForge model on 1k and 10k held-out rows, peak RSS of each.
Writes benchmarks/results/bench_finetune_<rows>[_<tag>].json; work files go to runs/bench-finetune-<rows>[_<tag>]/.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/envinfo.py, shared by bench_*.py
from envinfo import environment, load_average

ROOT = Path(__file__).resolve().parents[1]
SST2 = ROOT.parent / "shared" / "data" / "sst2"
RESULTS = ROOT / "benchmarks" / "results"
RUNS = ("tuneforge", "trainer-runglue", "trainer-strongest")
MARK = "BENCH_JSON "
VALIDATION_ROWS = 128
HP = {"max_length": 128, "batch_size": 32, "learning_rate": 1e-4, "warmup_ratio": 0.1, "weight_decay": 0.01,
      "seed": 42, "device": "cpu", "model": "minilm-l6"}
TARGETS = {"throughput_vs_run_glue_style": 3.0, "throughput_vs_trainer_strongest": 1.3, "accuracy_within_points": 0.5,
           "mfu": 0.45, "tuneforge_peak_rss_mb": 2000, "eval_rss_ratio": 1.15}


# ----------------------------------------------------------------------------------------------- data

def read_sst2():
    import pandas as pd

    kw = {"sep": "\t", "quoting": csv.QUOTE_NONE, "dtype": str, "keep_default_na": False}
    train = pd.read_csv(SST2 / "train.tsv", **kw)
    dev = pd.read_csv(SST2 / "dev.tsv", **kw).rename(columns={"sentence": "text"})
    return train, dev


def prepare_data(args, folder: Path) -> dict:
    """train subset (seeded, as sst2_defaults.prepare), dev, validation and eval files; returns their facts."""
    train, dev = read_sst2()
    subset = train.sample(n=args.train_rows, random_state=args.data_seed) if args.train_rows else train
    rest = train.drop(subset.index).sample(frac=1, random_state=args.data_seed)
    folder.mkdir(parents=True, exist_ok=True)
    subset.to_csv(folder / "train.csv", index=False)
    dev = dev.head(args.dev_rows) if args.dev_rows else dev
    dev.to_csv(folder / "dev.csv", index=False)
    held_out = len(rest) >= VALIDATION_ROWS + max(args.eval_rows)
    pool = rest if held_out else train.sample(frac=1, random_state=args.data_seed)
    pool.head(VALIDATION_ROWS).to_csv(folder / "validation.csv", index=False)
    evals = pool.iloc[VALIDATION_ROWS:] if held_out else pool
    for n in args.eval_rows:
        evals.head(n).to_csv(folder / f"eval_{n}.csv", index=False)
    source = "SST-2 train rows outside the training subset" if held_out else "SST-2 train rows (subset = all rows)"
    return {"train_rows": len(subset), "dev_rows": len(dev), "validation_rows": VALIDATION_ROWS,
            "validation_and_eval_source": source, "data_seed": args.data_seed, "folder": str(folder)}


def read_csv(path: Path):
    import pandas as pd

    return pd.read_csv(path, dtype=str, keep_default_na=False)


# ----------------------------------------------------------------------------------------------- children

def emit(payload: dict) -> None:
    """The child's one result line: its payload plus its own peak RSS (ru_maxrss is KiB on Linux)."""
    payload["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6, 1)
    print(MARK + json.dumps(payload), flush=True)


def peak_dtype(args):
    """The matmul dtype MFU is measured against: the run's compute dtype."""
    import torch

    return torch.bfloat16 if args.precision == "bf16" else torch.float32


def child_peak(args) -> None:
    import torch

    from tuneforge.train.runtime import measure_matmul_peak

    torch.set_num_threads(args.threads)
    emit({"peak_flops": measure_matmul_peak(dtype=peak_dtype(args))})


def child_probe(args) -> None:
    """Matmul peak, non-embedding params of the classifier, and the real (unpadded) token count of the train rows."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tuneforge.model.inspect import non_embedding_params
    from tuneforge.model.resolve import resolve_model
    from tuneforge.train.runtime import measure_matmul_peak

    torch.set_num_threads(args.threads)
    peak = measure_matmul_peak(dtype=peak_dtype(args))
    path = resolve_model(HP["model"])
    texts = read_csv(Path(args.work) / "data" / "train.csv")["text"].tolist()
    ids = AutoTokenizer.from_pretrained(path)(texts, truncation=True, max_length=HP["max_length"])["input_ids"]
    lengths = [len(x) for x in ids]
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    emit({"peak_flops": peak, "non_embedding_params": non_embedding_params(model), "real_tokens": sum(lengths),
          "rows": len(lengths), "mean_tokens_per_row": round(sum(lengths) / len(lengths), 2),
          "max_tokens_per_row": max(lengths), "torch_threads": torch.get_num_threads()})


def tuneforge_args(work: Path, epochs: float, threads: int, seed: int = HP["seed"], precision: str = "fp32") -> list[str]:
    """`tuneforge finetune` arguments: the shared hyperparameters, one evaluation (at the end), no early stop."""
    data, sets = work / "data", {
        "data.max_length": HP["max_length"], "train.batch_size": HP["batch_size"],
        "train.learning_rate": HP["learning_rate"], "train.epochs": epochs, "train.warmup_ratio": HP["warmup_ratio"],
        "train.weight_decay": HP["weight_decay"], "train.seed": seed, "train.early_stopping_patience": 0,
        "eval.every_steps": 10**9, "runtime.precision": precision, "runtime.device": HP["device"],
        "runtime.threads": threads, "runtime.progress": "false", "model.extend_vocab": "never"}
    out = ["finetune", "--train", str(data / "train.csv"), "--validation", str(data / "validation.csv"),
           "--test", str(data / "dev.csv"), "--model", HP["model"], "--output", str(work / "tuneforge"), "--overwrite"]
    for key, value in sets.items():
        out += ["--set", f"{key}={value}"]
    return out


def child_tuneforge(args) -> None:
    """`python -m tuneforge finetune ...`, in this process (same entry point) so ru_maxrss is the run's own."""
    work = Path(args.work)
    sys.argv = ["tuneforge", *tuneforge_args(work, args.epochs, args.threads, args.seed, args.precision)]
    from tuneforge.cli import main

    main()
    summary = json.loads((work / "tuneforge" / "summary.json").read_text())
    log = [json.loads(x) for x in (work / "tuneforge" / "metrics.jsonl").read_text().splitlines() if x.strip()]
    train_log = [r for r in log if "loss" in r and r.get("split") is None]
    emit({"train_seconds": summary["train_seconds"], "steps": summary["steps"],
          "dev_accuracy": summary["metrics"]["test"]["accuracy"], "stop_reason": summary["stop_reason"], "seed": args.seed,
          "evaluations_during_training": sum(r.get("split") == "validation" for r in log),
          "tokens_seen": train_log[-1]["tokens"] if train_log else None,
          "tuneforge_samples_per_s": summary["train_samples_per_s"]})


def trainer_arguments(work: Path, style: str, epochs: float, threads: int, seed: int = HP["seed"],
                      precision: str = "fp32") -> dict:
    """TrainingArguments (transformers 5 names): no eval, no checkpoints, no reporting; CPU, fp32 unless bf16."""
    kw = {"output_dir": str(work / style), "num_train_epochs": epochs, "per_device_train_batch_size": HP["batch_size"],
          "per_device_eval_batch_size": 128, "learning_rate": HP["learning_rate"],
          "warmup_steps": HP["warmup_ratio"],  # a float < 1 is a ratio (warmup_ratio is gone in v5)
          "weight_decay": HP["weight_decay"], "lr_scheduler_type": "linear", "seed": seed, "use_cpu": True,
          "eval_strategy": "no", "save_strategy": "no", "report_to": "none", "disable_tqdm": True,
          "dataloader_drop_last": True,  # TuneForge drops the partial batch too: same optimizer steps
          "dataloader_num_workers": 0}
    if precision == "bf16":
        kw["bf16"] = True  # CPU autocast to bfloat16, as TuneForge's runtime.precision=bf16
    if style == "trainer-strongest":
        kw.update(train_sampling_strategy="group_by_length", dataloader_pin_memory=False)
    return kw


def trainer_datasets(tokenizer, work: Path, style: str):
    """Tokenized train and dev `datasets`: padded to 128 (run_glue default) or unpadded (dynamic padding)."""
    import datasets

    datasets.disable_progress_bars()
    pad = {"padding": "max_length"} if style == "trainer-runglue" else {}

    def load(name: str):
        df = read_csv(work / "data" / f"{name}.csv")
        ds = datasets.Dataset.from_dict({"text": df["text"].tolist(), "label": df["label"].astype(int).tolist()})
        return ds.map(lambda b: tokenizer(b["text"], max_length=HP["max_length"], truncation=True, **pad),
                      batched=True, remove_columns=["text"])

    return load("train"), load("dev")


def dev_accuracy(model, dev, collator, batch_size: int = 64) -> float:
    """Every dev row (the training arguments drop the last partial batch, so no `trainer.predict`)."""
    import numpy as np
    import torch

    keys = ("input_ids", "attention_mask", "token_type_ids")
    model.eval()
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(dev), batch_size):
            rows = [dev[i] for i in range(start, min(start + batch_size, len(dev)))]
            batch = collator([{k: r[k] for k in keys if k in r} for r in rows])
            logits = model(**{k: v for k, v in batch.items() if k in keys}).logits
            correct += int((logits.argmax(-1).numpy() == np.array([r["label"] for r in rows])).sum())
    return correct / len(dev)


def child_trainer(args) -> None:
    """HF Trainer, set up as run_glue.py (trainer-runglue) or at its strongest (trainer-strongest)."""
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        default_data_collator,
        set_seed,
    )

    from tuneforge.model.resolve import resolve_model

    torch.set_num_threads(args.threads)
    style, work, path = args.child, Path(args.work), resolve_model(HP["model"])
    tokenizer = AutoTokenizer.from_pretrained(path)
    train, dev = trainer_datasets(tokenizer, work, style)
    set_seed(args.seed)  # as run_glue.py: seed before the model, so the new head's init is seeded
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    kw = trainer_arguments(work, style, args.epochs, args.threads, args.seed, args.precision)
    collator = default_data_collator if style == "trainer-runglue" else DataCollatorWithPadding(tokenizer)
    trainer = Trainer(model=model, args=TrainingArguments(**kw), train_dataset=train, data_collator=collator,
                      processing_class=tokenizer)
    result = trainer.train()
    accuracy = dev_accuracy(trainer.model, dev, collator)
    emit({"train_seconds": result.metrics["train_runtime"], "steps": result.global_step, "dev_accuracy": accuracy,
          "seed": args.seed,
          "training_arguments": kw, "torch_threads": torch.get_num_threads()})


def child_evaluate(args) -> None:
    """What `tuneforge evaluate --model M --data F` runs, with this process's peak RSS."""
    from tuneforge.recipes.evaluate import evaluate

    start = time.perf_counter()
    out = evaluate(args.model_dir, args.eval_file, str(Path(args.work) / "eval" / Path(args.eval_file).stem))
    emit({"rows": out["metrics"]["samples"], "seconds": round(time.perf_counter() - start, 2),
          "accuracy": out["metrics"]["accuracy"]})


CHILDREN = {"peak": child_peak, "probe": child_probe, "tuneforge": child_tuneforge,
            "trainer-runglue": child_trainer, "trainer-strongest": child_trainer, "evaluate": child_evaluate}


# ----------------------------------------------------------------------------------------------- parent

def run_marked(cmd: list[str], log: Path, label: str) -> dict:
    """Run one child process (offline), keep its output in `log`, return the JSON of its last result line plus
    its wall seconds; a failed child stops the benchmark with its output's tail."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}
    print(f"  {label} ...", end="", flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, check=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - start
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(proc.stdout)
    lines = [x for x in proc.stdout.splitlines() if x.startswith(MARK)]
    if proc.returncode or not lines:
        print(proc.stdout[-3000:])
        raise SystemExit(f"child {label} failed (exit {proc.returncode}); log: {log}")
    print(f" {wall:.0f} s")
    return {**json.loads(lines[-1][len(MARK):]), "wall_seconds": round(wall, 1)}


def run_child(mode: str, args, log_name: str, extra: list[str] | None = None) -> dict:
    """Run one child mode of this script; its output goes to a log file, its result line comes back."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", mode, "--work", str(args.work),
           "--epochs", str(args.epochs), "--threads", str(args.threads), "--precision", args.precision, *(extra or [])]
    return run_marked(cmd, Path(args.work) / "logs" / f"{log_name}.log", log_name)


def median_run(repeats: list[dict], rows: int, tokens: int, epochs: float) -> dict:
    """Median train seconds / RSS over repeats, throughputs from the median seconds; accuracy: the mean over the
    repeats (different seeds: the expected accuracy; one seed: all repeats agree, the mean is that value)."""
    seconds = statistics.median(r["train_seconds"] for r in repeats)
    accuracies = [r["dev_accuracy"] for r in repeats]
    return {"train_seconds": round(seconds, 2), "train_samples_per_s": round(rows * epochs / seconds, 2),
            "real_tokens_per_s": round(tokens * epochs / seconds, 1),
            "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in repeats),
            "dev_accuracy": round(statistics.fmean(accuracies), 5),
            "dev_accuracy_sd": round(statistics.stdev(accuracies), 5) if len(accuracies) > 1 else 0.0,
            "steps": repeats[0]["steps"], "repeats": repeats}


def compare(runs: dict, probe: dict, peak: float, evals: dict) -> dict:
    """Ratios (> 1: TuneForge better), accuracy deltas in points, MFU, the eval-memory ratio and the targets."""
    tf, rg, st = runs["tuneforge"], runs["trainer-runglue"], runs["trainer-strongest"]
    ratios = {"vs_run_glue_style": round(tf["train_samples_per_s"] / rg["train_samples_per_s"], 3),
              "vs_trainer_strongest": round(tf["train_samples_per_s"] / st["train_samples_per_s"], 3),
              "memory_vs_run_glue_style": round(rg["peak_rss_mb"] / tf["peak_rss_mb"], 3),
              "memory_vs_trainer_strongest": round(st["peak_rss_mb"] / tf["peak_rss_mb"], 3)}
    deltas = {"accuracy_vs_run_glue_style_points": round(100 * (tf["dev_accuracy"] - rg["dev_accuracy"]), 2),
              "accuracy_vs_trainer_strongest_points": round(100 * (tf["dev_accuracy"] - st["dev_accuracy"]), 2)}
    flops = 6 * probe["non_embedding_params"] * tf["real_tokens_per_s"]
    efficiency = {"non_embedding_params": probe["non_embedding_params"], "training_flops_per_s": round(flops),
                  "peak_flops": round(peak), "mfu": round(flops / peak, 4)}
    small, large = min(evals, key=int), max(evals, key=int)
    eval_memory = {"rows": {n: e["rows"] for n, e in evals.items()},
                   "peak_rss_mb": {n: e["peak_rss_mb"] for n, e in evals.items()},
                   "seconds": {n: e["seconds"] for n, e in evals.items()},
                   "rss_ratio_largest_to_smallest": round(evals[large]["peak_rss_mb"] / evals[small]["peak_rss_mb"], 3)}
    t = TARGETS
    met = {"throughput_vs_run_glue_style": ratios["vs_run_glue_style"] >= t["throughput_vs_run_glue_style"],
           "throughput_vs_trainer_strongest": ratios["vs_trainer_strongest"] >= t["throughput_vs_trainer_strongest"],
           "accuracy_vs_run_glue_style": deltas["accuracy_vs_run_glue_style_points"] >= -t["accuracy_within_points"],
           "accuracy_vs_trainer_strongest": deltas["accuracy_vs_trainer_strongest_points"] >= -t["accuracy_within_points"],
           "mfu": efficiency["mfu"] >= t["mfu"], "tuneforge_peak_rss": tf["peak_rss_mb"] <= t["tuneforge_peak_rss_mb"],
           "eval_memory_flat": eval_memory["rss_ratio_largest_to_smallest"] <= t["eval_rss_ratio"]}
    return {"ratios": ratios, "deltas": deltas, "efficiency": efficiency, "eval_memory": eval_memory,
            "targets": t, "targets_met": {**met, "all": all(met.values())}}


def commands(args) -> dict:
    script = "python benchmarks/bench_finetune.py"
    common = f"--work {args.work} --epochs {args.epochs} --threads {args.threads} --precision {args.precision} --seed <seed>"
    tf_args = tuneforge_args(Path(args.work), args.epochs, args.threads, 0, args.precision)
    return {"benchmark": " ".join(["python", *sys.argv]),
            "tuneforge": "python -m tuneforge " + " ".join(tf_args).replace("train.seed=0", "train.seed=<seed>"),
            "trainer-runglue": f"{script} --child trainer-runglue {common}",
            "trainer-strongest": f"{script} --child trainer-strongest {common}",
            "evaluate": f"python -m tuneforge evaluate --model {Path(args.work) / 'tuneforge' / 'final'} "
                        f"--data {Path(args.work) / 'data'}/eval_<rows>.csv"}


def run_all(args) -> tuple[dict, dict, dict, list]:
    """Probe, the three runs (order rotated per repeat), the eval-memory children, the closing peak."""
    probe = run_child("probe", args, "probe")
    raw, orders = {r: [] for r in RUNS}, []
    for k in range(args.repeats):
        order = RUNS[k % 3:] + RUNS[:k % 3]
        orders.append(list(order))
        seed = args.seeds[k % len(args.seeds)]
        for name in order:
            raw[name].append(run_child(name, args, f"{name}-r{k + 1}", ["--seed", str(seed)]))
    final = str(Path(args.work) / "tuneforge" / "final")
    evals = {str(n): run_child("evaluate", args, f"evaluate-{n}", ["--model-dir", final, "--eval-file",
                                                                   str(Path(args.work) / "data" / f"eval_{n}.csv")])
             for n in args.eval_rows}
    probe["peak_flops_end"] = run_child("peak", args, "peak-end")["peak_flops"]
    return probe, raw, evals, orders


def print_table(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"SST-2 fine-tune, {result['data']['train_rows']:,} train rows × {result['epochs']:g} epoch(s)")
    for col in ("run", "train s", "samples/s", "real tok/s", "peak RSS MB", "dev acc", "TF ÷ run (samples/s)"):
        table.add_column(col, justify="left" if col == "run" else "right")
    tf = result["runs"]["tuneforge"]["train_samples_per_s"]
    for name, r in result["runs"].items():
        table.add_row(name, f"{r['train_seconds']:.1f}", f"{r['train_samples_per_s']:.1f}",
                      f"{r['real_tokens_per_s']:.0f}", f"{r['peak_rss_mb']:.0f}", f"{r['dev_accuracy']:.4f}",
                      f"{tf / r['train_samples_per_s']:.2f}×")
    console = Console(width=max(110, Console().width))
    console.print(table)
    e, m = result["efficiency"], result["eval_memory"]
    console.print(f"MFU {e['mfu']:.1%} of the measured {result['hyperparameters']['precision']} peak {e['peak_flops'] / 1e9:.1f} GFLOP/s · "
                  f"eval RSS {m['peak_rss_mb']} MB, ratio {m['rss_ratio_largest_to_smallest']} · "
                  f"accuracy deltas {result['deltas']}")
    console.print(f"targets met: {result['targets_met']}")


def benchmark(args) -> None:
    # bf16 results never overwrite the fp32 file of the same rows: bench_finetune_4000_bf16.json
    name = f"{args.train_rows or 'full'}" + ("_bf16" if args.precision == "bf16" else "") + (f"_{args.tag}" if args.tag else "")
    args.work = str(ROOT / "runs" / f"bench-finetune-{name}")
    print(f"bench_finetune {name}: work folder {args.work}")
    machine = environment(args.threads)
    data = prepare_data(args, Path(args.work) / "data")
    probe, raw, evals, orders = run_all(args)
    peak = max(probe["peak_flops"], probe["peak_flops_end"])
    runs = {n: median_run(raw[n], data["train_rows"], probe["real_tokens"], args.epochs) for n in RUNS}
    result = {"benchmark": "bench_finetune", "data": data, "epochs": args.epochs, "repeats": args.repeats,
              "orders": orders, "seeds": [args.seeds[k % len(args.seeds)] for k in range(args.repeats)],
              "hyperparameters": {**HP, "precision": args.precision}, "real_tokens": probe["real_tokens"],
              "mean_tokens_per_row": probe["mean_tokens_per_row"], "runs": runs,
              **compare(runs, probe, peak, evals), "measured_peak_flops": {"start": probe["peak_flops"],
                                                                          "end": probe["peak_flops_end"], "used": peak},
              "commands": commands(args), "machine": {**machine, "load_average_at_end": load_average()}}
    out = RESULTS / f"bench_finetune_{name}.json"
    out.write_text(json.dumps(result, indent=2))
    print_table(result)
    print(f"wrote {out.relative_to(ROOT)}")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-rows", type=int, default=4000, help="training subset size; 0 = all 67,349 rows")
    ap.add_argument("--dev-rows", type=int, default=0, help="first N dev rows (smoke tests only); 0 = all 872")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=0, help="runs per configuration (default: one per seed); "
                                                             "median speeds, mean accuracy")
    ap.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[HP["seed"]],
                    help="training seeds, one per repeat, cycled (comma-separated)")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="precision of every run")
    ap.add_argument("--seed", type=int, default=HP["seed"], help=argparse.SUPPRESS)
    ap.add_argument("--eval-rows", type=lambda s: [int(x) for x in s.split(",")], default=[1000, 10000],
                    help="held-out row counts for the evaluation-memory check (comma-separated)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads for every run")
    ap.add_argument("--data-seed", type=int, default=0, help="seed of the train-subset sample (as sst2_defaults)")
    ap.add_argument("--tag", default="", help="suffix of the result file and work folder")
    ap.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    ap.add_argument("--model-dir", help=argparse.SUPPRESS)
    ap.add_argument("--eval-file", help=argparse.SUPPRESS)
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    args.repeats = args.repeats or len(args.seeds)
    if args.child:
        CHILDREN[args.child](args)
    else:
        benchmark(args)


if __name__ == "__main__":
    main()

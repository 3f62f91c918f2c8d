"""Pretraining evidence: mini from scratch on a budget, its downstream gain on SST-2, and continued MiniLM.

Usage:  python -m benchmarks.pretrain_evidence [--minutes 30] [--continued-minutes 10] [--train-rows 8000]
        [--only scratch,downstream,continued] [--out-dir benchmarks/results] [--allow-dirty]

1. Corpus (unlabelled): SST-2 train sentences (the text column only), WikiText-2 valid + test, Multi30k
   train (English). The SST-2 dev set is never in it.
2. `tuneforge pretrain --preset mini` from scratch for --minutes; perplexity curve and tokens/s.
3. Fine-tune that checkpoint on SST-2 subsets (dev = test), and the same architecture from random init
   with the same tokenizer, steps and seed, for each of --seeds; dev accuracies per seed and their means.
4. `tuneforge pretrain --model minilm-l6` (continued) for --continued-minutes; perplexity before and after.

Writes pretrain_{scratch_mini,downstream_sst2,continued_minilm}.json into --out-dir (default benchmarks/results/).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

from benchmarks.common import (
    RESULTS,
    ROOT,
    SHARED_DATA,
    environment,
    guard_output,
    prepare_sst2,
    shown,
    write_result,
)

DATA = SHARED_DATA

PRECISION = "bf16"  # measured 1.5× the fp32 tokens/s for `mini` on this avx512_bf16 CPU
CORPUS = [DATA / "sst2" / "train.tsv", DATA / "wikitext2" / "wiki.valid.raw", DATA / "wikitext2" / "wiki.test.raw",
          DATA / "multi30k" / "train.en"]


def tf(*args: str) -> list[str]:
    return [sys.executable, "-m", "tuneforge", *args]


def run(cmd: list[str]) -> float:
    print("$", " ".join(cmd[2:]), flush=True)
    t0 = time.time()
    subprocess.run(cmd, check=True)
    return round(time.time() - t0, 1)


def curve(run_dir: Path) -> list[dict]:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    return [{k: r[k] for k in ("step", "perplexity", "loss", "masked_accuracy")} for r in rows if r.get("split")]


def train_speed(run_dir: Path, summary: dict) -> dict:
    """Median tokens/s over the logged windows; its MFU uses the run's final peak (the better of the start and end
    measurements), since a neighbour's load at start depresses the peak the per-window log lines divide by."""
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    tps = sorted(r["tokens_per_s"] for r in rows if "tokens_per_s" in r)
    median = tps[len(tps) // 2] if tps else None
    return {"median_window_tokens_per_s": median,
            "median_window_mfu": round(median * summary["flops_per_token"] / summary["peak_flops"], 4) if tps else None}


def meta() -> dict:
    import torch

    return {"environment": environment(torch.get_num_threads())}


def save(name: str, result: dict, args) -> None:
    """One result file into --out-dir (the results policy: common.write_result)."""
    print(f"wrote {shown(write_result(Path(args.out_dir) / name, result, args.started, args.allow_dirty))}")


def pretrain(out: Path, minutes: float, model_args: list[str], tag: str, extra: list[str], args) -> dict:
    corpus = [str(p) for p in CORPUS]
    extra = [x for s in extra for x in ("--set", s)]
    cmd = tf("pretrain", "--corpus", *corpus, *model_args, *extra, "--output", str(out), "--overwrite",
             "--set", f"train.budget_minutes={minutes}", "--set", f"runtime.precision={PRECISION}",
             "--set", "runtime.progress=false")
    wall = run(cmd)
    s = json.loads((out / "summary.json").read_text())
    result = {"benchmark": f"pretrain_{tag}", "command": "tuneforge " + " ".join(cmd[3:]).replace(str(DATA), "../shared/data"),
              "wall_seconds": wall, "train_seconds": s["train_seconds"], "steps": s["steps"], "tokens": s["tokens"],
              "tokens_per_s": s["tokens_per_s"], "mfu": s["mfu"], "peak_gflops": round(s["peak_flops"] / 1e9, 1),
              "perplexity_before": (s["initial_metrics"] or {}).get("perplexity"),
              "perplexity_after": s["metrics"]["perplexity"], "masked_accuracy": s["metrics"]["masked_accuracy"],
              "corpus": s["corpus"], "perplexity_curve": curve(out), **train_speed(out, s),
              "resolved_config": (out / "config.yaml").read_text(), **meta()}
    save(f"pretrain_{tag}.json", result, args)
    return result


def random_init_folder(tokenizer_dir: Path, out: Path, seed: int) -> Path:
    from accelerate.utils import set_seed
    from transformers import AutoTokenizer

    from tuneforge.model.mlm import build_mlm

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = json.loads((tokenizer_dir / "config.json").read_text())  # the same architecture as the pretrained one
    norm = "pre" if config["model_type"] == "roberta-prelayernorm" else "post"
    set_seed(seed)
    build_mlm("mini", tok, dropout=config["hidden_dropout_prob"], norm=norm).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def downstream(work: Path, pretrained: Path, rows: int, seeds: list[int]) -> dict:
    """Fine-tune the pretrained checkpoint and a random init of the same architecture (built with the same seed as
    the fine-tune) on `rows` SST-2 rows, once per seed; dev accuracy per seed, their mean and the mean gain."""
    work = work / f"rows-{rows}"
    train, dev = prepare_sst2(rows, 0, work / "data")
    result = {"train_rows": rows, "dev_rows": 872, "seeds": seeds, "runs": {"pretrained": {}, "random_init": {}}}
    for seed in seeds:
        random_dir = random_init_folder(pretrained, work / f"random-init-{seed}", seed=seed)
        common = ["--train", str(train), "--test", str(dev), "--overwrite", "--set", "data.validation_fraction=0.05",
                  "--set", "train.epochs=3", "--set", "train.early_stopping_patience=0", "--set", f"train.seed={seed}",
                  "--set", "runtime.progress=false"]
        for name, model in (("pretrained", pretrained), ("random_init", random_dir)):
            out = work / f"{name}-{seed}"
            cmd = tf("finetune", "--model", str(model), "--output", str(out), *common)
            wall = run(cmd)
            s = json.loads((out / "summary.json").read_text())
            result["runs"][name].setdefault("per_seed", []).append({
                "seed": seed, "command": "tuneforge " + " ".join(cmd[3:]), "wall_seconds": wall,
                "dev_accuracy": s["metrics"]["test"]["accuracy"], "dev_macro_f1": s["metrics"]["test"]["macro_f1"],
                "validation_accuracy": s["metrics"]["validation"]["accuracy"], "steps": s["steps"],
                "best_step": s["best_step"],
                "learning_rate": yaml.safe_load((out / "config.yaml").read_text())["train"]["learning_rate"]})
    for r in result["runs"].values():
        accs = [x["dev_accuracy"] for x in r["per_seed"]]
        r["dev_accuracy"] = round(statistics.fmean(accs), 5)
        r["dev_accuracy_sd"] = round(statistics.stdev(accs), 5) if len(accs) > 1 else 0.0
    pt, ri = (result["runs"][k]["per_seed"] for k in ("pretrained", "random_init"))
    result["gain_points_per_seed"] = [round(100 * (a["dev_accuracy"] - b["dev_accuracy"]), 2) for a, b in zip(pt, ri)]
    result["gain_points"] = round(statistics.fmean(result["gain_points_per_seed"]), 2)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--continued-minutes", type=float, default=10)
    ap.add_argument("--train-rows", default="8000,4000,2000,1000", help="comma-separated SST-2 subset sizes")
    ap.add_argument("--seeds", default="42,43,44", help="fine-tuning seeds (comma-separated); accuracies are means")
    ap.add_argument("--set", action="append", default=[], help="extra --set for the from-scratch pretraining")
    ap.add_argument("--only", default="scratch,downstream,continued")
    ap.add_argument("--precision", default="bf16", help="pretraining precision (fine-tuning stays at the default)")
    ap.add_argument("--out-dir", default=str(RESULTS), help="folder for the three result files (default: "
                    "benchmarks/results/; elsewhere a dirty tree is fine)")
    ap.add_argument("--allow-dirty", action="store_true", help="write into benchmarks/results/ from a dirty git tree "
                    '(the files are then marked "git_dirty": true)')
    args = ap.parse_args()
    args.started = guard_output(args.out_dir, args.allow_dirty)
    global PRECISION
    PRECISION = args.precision
    work = ROOT / "runs" / "evidence"
    steps = args.only.split(",")
    if "scratch" in steps:
        print(json.dumps({k: v for k, v in pretrain(work / "pt-mini", args.minutes, ["--preset", "mini"], "scratch_mini",
                                                     args.set, args).items()
                          if k not in ("perplexity_curve", "resolved_config")}, indent=2))
    if "downstream" in steps:
        seeds = [int(x) for x in args.seeds.split(",")]
        sizes = [downstream(work / "downstream", work / "pt-mini" / "final", int(n), seeds)
                 for n in args.train_rows.split(",")]
        result = {"benchmark": "pretrain_downstream_sst2", "pretrained": str(work / "pt-mini" / "final"),
                  "subsets": sizes, **meta()}
        print(json.dumps(result, indent=2))
        save("pretrain_downstream_sst2.json", result, args)
    if "continued" in steps:
        print(json.dumps({k: v for k, v in pretrain(work / "pt-minilm", args.continued_minutes, ["--model", "minilm-l6"],
                                                     "continued_minilm", [], args).items()
                          if k not in ("perplexity_curve", "resolved_config")}, indent=2))


if __name__ == "__main__":
    main()

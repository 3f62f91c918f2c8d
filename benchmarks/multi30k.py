"""Multi30k translation from scratch with TuneForge's defaults (issue 19): test BLEU (sacreBLEU, cased, detokenised)
after a fixed training budget on this machine, with the curve of validation BLEU against training wall time.

Usage (from the repository root):
    python -m benchmarks.multi30k                                   # en→de, 60 training minutes (the goal's run)
    python -m benchmarks.multi30k --source de --target en           # the other direction, same command
    python -m benchmarks.multi30k --minutes 3 --out /tmp/m.json     # smoke

What runs: one child process, the command a user types,
    tuneforge finetune --task translation --train multi30k/train --validation multi30k/val
        --test multi30k/test_2016_flickr --source-lang en --target-lang de --set train.budget_minutes=60
with nothing else chosen: the joint tokenizer, its size, the model preset, batch tokens, learning rate, epochs,
evaluation spacing, checkpoint averaging and beam search (4 beams) are the defaults TuneForge picks from the data.
`train.budget_minutes` is the rule of the benchmark, not a tuned setting: the loop stops training after that many
minutes of training time (evaluation excluded) and the learning-rate schedule decays to 0 at the budget. `--set
KEY=VALUE` adds settings and makes the run a named variant (`"default_path": false`).

Reported: test and validation BLEU and chrF with their 95% bootstrap intervals and sacreBLEU signatures, the length
ratio, the validation-BLEU curve (greedy, `eval.bleu_samples` sentences) against training seconds, steps, tokens,
tokens/s, MFU (FLOPs executed per token as the run counts them), the chosen defaults (from the run's config.yaml and
its "auto:" lines), checkpoint averaging, wall seconds, peak RSS. Goal: test BLEU ≥ 35 within 60 training minutes.
Writes benchmarks/results/multi30k_<src>-<tgt>.json (or --out); the run folder stays in runs/bench-multi30k-<src>-<tgt>.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import (OFFLINE_ENV, RESULTS, ROOT, SHARED_DATA, add_output_args, environment, guard_output,
                               invocation, load_average, shown, write_result)

DATA = SHARED_DATA / "multi30k"
GOAL_BLEU = 35.0


def command(args, run: Path) -> list[str]:
    cmd = [sys.executable, "-m", "tuneforge", "finetune", "--task", "translation",
           "--train", str(DATA / "train"), "--validation", str(DATA / "val"), "--test", str(DATA / "test_2016_flickr"),
           "--source-lang", args.source, "--target-lang", args.target, "--output", str(run), "--overwrite",
           "--set", f"train.budget_minutes={args.minutes:g}"]
    if args.threads:
        cmd += ["--set", f"runtime.threads={args.threads}"]
    for item in args.set:
        cmd += ["--set", item]
    return cmd


def curve(run: Path) -> list[dict]:
    """Validation records of metrics.jsonl: step, training seconds, held-out loss, greedy BLEU."""
    rows = []
    for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if rec.get("split") == "validation":
            rows.append({k: rec.get(k) for k in ("step", "train_seconds", "loss", "bleu")})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", default="en")
    ap.add_argument("--target", default="de")
    ap.add_argument("--minutes", type=float, default=60.0, help="training budget (train.budget_minutes)")
    ap.add_argument("--threads", type=int, default=0, help="runtime.threads (0: TuneForge's default, all cores)")
    ap.add_argument("--set", action="append", default=[], help="extra KEY=VALUE for the run (a named variant)")
    add_output_args(ap, None)
    args = ap.parse_args()
    pair = f"{args.source}-{args.target}"
    out = Path(args.out) if args.out else RESULTS / f"multi30k_{pair}.json"
    started = guard_output(out, args.allow_dirty)
    run = ROOT / "runs" / f"bench-multi30k-{pair}"
    log = run.with_name(run.name + ".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = command(args, run)
    print(" ".join(cmd[2:]), flush=True)
    t0 = time.perf_counter()
    with open(log, "w", encoding="utf-8") as fh:
        proc = subprocess.run(["/usr/bin/time", "-v", *cmd] if Path("/usr/bin/time").exists() else cmd,
                              stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, **OFFLINE_ENV}, cwd=ROOT)
    wall = time.perf_counter() - t0
    text = log.read_text(encoding="utf-8")
    if proc.returncode:
        print(text[-3000:])
        raise SystemExit(f"the run failed (exit {proc.returncode}); log: {log}")
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    auto = [line.strip() for line in text.splitlines() if line.startswith("auto:")]
    test = summary["metrics"].get("test", {})
    result = {
        "benchmark": "multi30k", "command": invocation("multi30k"), "run_command": " ".join(cmd[2:]),
        "direction": pair, "budget_minutes": args.minutes, "default_path": not args.set,
        "variant": args.set or None,
        "goal": {"test_bleu_at_least": GOAL_BLEU, "training_minutes": 60,
                 "met": bool(test.get("bleu", 0) >= GOAL_BLEU and args.minutes <= 60 and not args.set)},
        "metrics": summary["metrics"], "steps": summary["steps"], "best_step": summary.get("best_step"),
        "stop_reason": summary.get("stop_reason"), "train_seconds": summary["train_seconds"],
        "tokens": summary["tokens"], "tokens_per_s": summary["tokens_per_s"], "mfu": summary.get("mfu"),
        "flops_per_token": summary.get("flops_per_token"), "averaging": summary.get("averaging"),
        "auto": auto, "curve": curve(run), "wall_seconds": round(wall, 1),
        "peak_rss_mb": round(int(rss.group(1)) / 1024, 1) if rss else None, "run_dir": shown(run),
        "environment": environment(args.threads or None, extra=("sacrebleu",)),
        "load_average_at_end": load_average(),
    }
    print(json.dumps({k: result[k] for k in ("metrics", "steps", "train_seconds", "tokens_per_s")}, indent=1))
    print(f"wrote {shown(write_result(out, result, started, args.allow_dirty))}")


if __name__ == "__main__":
    main()

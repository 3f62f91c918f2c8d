"""Issue 18's evidence run: the GPT-style `mini` preset pretrained from scratch with next-token prediction for 30
CPU-minutes on the shared corpus (SST-2 train sentences, WikiText-2 valid + test, Multi30k train English), exactly
as the packaged preset says; held-out perplexity before, along and after training, and the greedy report samples.

Usage:  python -m benchmarks.pretrain_gpt_mini [--minutes 30] [--work DIR] [--out PATH] [--allow-dirty]

It runs `tuneforge pretrain src/tuneforge/resources/presets/pretrain_gpt_mini.yaml` through the Python API (the same
recipe as the CLI), with only `train.budget_minutes` (when --minutes differs, a named variant) and progress bars off.
Writes benchmarks/results/pretrain_gpt_mini.json: the curve (step, tokens, held-out loss and perplexity), tokens/s,
MFU, and the samples from the report.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from benchmarks.common import RESULTS, ROOT, add_output_args, environment, guard_output, load_average, shown, write_result

PRESET = ROOT / "src/tuneforge/resources/presets/pretrain_gpt_mini.yaml"


def curve(metrics_file: Path, tokens_per_step: float) -> list[dict]:
    """Held-out evaluations with the training tokens seen by then (every step trains on full blocks)."""
    rows = []
    for line in metrics_file.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record.get("split") == "validation":
            rows.append({"step": record["step"], "tokens": round(record["step"] * tokens_per_step),
                         "loss": record.get("loss"), "perplexity": record.get("perplexity")})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0, help="training budget (the preset's is 30)")
    ap.add_argument("--work", default=None, help="run folder (default: a temp folder)")
    add_output_args(ap, None)
    args = ap.parse_args()
    variant = "" if args.minutes == 30 else f"_{args.minutes:g}min"
    out = Path(args.out or RESULTS / f"pretrain_gpt_mini{variant}.json")
    started = guard_output(out, args.allow_dirty)

    from tuneforge.config import load_config
    from tuneforge.config.schema import PretrainConfig
    from tuneforge.recipes.pretrain import pretrain

    work = Path(args.work or tempfile.mkdtemp(prefix="gpt-mini-"))
    overrides = ["runtime.progress=false"] + ([f"train.budget_minutes={args.minutes:g}"] if variant else [])
    cfg = load_config(PRESET, PretrainConfig, overrides, {"output": str(work / "run")})
    summary = pretrain(cfg, overwrite=True)
    run = Path(summary.run_dir) if getattr(summary, "run_dir", None) else work / "run"
    points = curve(run / "metrics.jsonl", summary.tokens / max(1, summary.steps))
    final = summary.metrics or {}
    report = run / "report" / "report.md"
    result = {"benchmark": "pretrain_gpt_mini", "preset": str(PRESET.relative_to(ROOT)), "overrides": overrides,
              "default_path": not variant, "budget_minutes": args.minutes,
              "initial": summary.initial_metrics, "final": final, "curve": points,
              "steps": summary.steps, "tokens": summary.tokens, "train_seconds": summary.train_seconds,
              "tokens_per_s": summary.tokens_per_s, "mfu": summary.mfu, "stop_reason": summary.stop_reason,
              "corpus": summary.corpus,
              "report_markdown": report.read_text(encoding="utf-8") if report.is_file() else None,
              "load_average_at_end": load_average()}
    path = write_result(out, result, started, args.allow_dirty, environment())
    print(f"held-out perplexity {(summary.initial_metrics or {}).get('perplexity')} → {final.get('perplexity')} "
          f"after {summary.steps} steps, {summary.tokens:,} tokens, {summary.train_seconds:.0f} s → {shown(path)}")


if __name__ == "__main__":
    main()

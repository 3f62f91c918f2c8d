"""Render the README's benchmark table from benchmarks/results/*.json, so the two never drift.

Usage:  python benchmarks/table.py            # print the table
        python benchmarks/table.py --write    # replace the table between the README's bench-table markers
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
START, END = "<!-- bench-table -->", "<!-- /bench-table -->"


def _sst2_rows() -> list[str]:
    """One row per sst2_defaults file; files tagged `<tag>-seedNN` (other training seeds of the same run) fold
    into their base file's row as a mean over seeds."""
    rows, groups = [], {}
    for path in sorted(RESULTS.glob("sst2_defaults_*.json")):
        groups.setdefault(re.sub(r"-seed\d+$", "", path.stem), []).append(path)
    bases = sorted((p for p in groups if (RESULTS / f"{p}.json").is_file()),
                   key=lambda p: json.loads((RESULTS / f"{p}.json").read_text())["train_rows"])
    for base in bases:
        path = RESULTS / f"{base}.json"
        runs = [json.loads(p.read_text()) for p in sorted(groups[base], key=lambda p: (p.stem != base, p.stem))]
        r = json.loads(path.read_text())
        what = "stock-Trainer-like settings (lr 5e-5, batch 32, 1 epoch)" if "stock" in path.name else "auto defaults, no hyperparameters given"
        what = r.get("label", what)
        acc = f"dev acc **{r['dev_accuracy']:.4f}**"
        if len(runs) > 1:
            each = ", ".join(f"{x['dev_accuracy']:.4f}" for x in runs)
            acc = f"dev acc **{sum(x['dev_accuracy'] for x in runs) / len(runs):.4f}** (mean of {len(runs)} training seeds: {each})"
        rows.append(f"| SST-2, {r['train_rows']:,} train rows, {what} | {acc} "
                    f"(TF-IDF+LR {r['tfidf_lr_dev_accuracy']:.4f}) · {r['steps']} steps, {r['train_samples_per_s']:.0f} "
                    f"train samples/s, {r['wall_seconds'] / 60:.1f} min wall | `{path.name}`"
                    + (" + seeds" if len(runs) > 1 else "") + " |")
    return rows


def _chinese_rows() -> list[str]:
    path = RESULTS / "chinese_vocab.json"
    if not path.is_file():
        return []
    r = json.loads(path.read_text())
    parts = ", ".join(f"{name} {run['test_accuracy']:.3f}" for name, run in r["runs"].items())
    return [f"| Chinese demo rows on the English default model ({r['rows']['test']} test rows) | {parts}; "
            f"TF-IDF char n-grams {r['tfidf_char_lr_test_accuracy']:.3f} | `{path.name}` |"]


def _load(name: str) -> dict | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.is_file() else None


def _pretrain_rows() -> list[str]:
    rows = []
    if r := _load("pretrain_scratch_mini.json"):
        rows.append(f"| MLM pretraining, `mini` from scratch, {r['train_seconds'] / 60:.0f} min budget, "
                    f"{r['corpus']['tokens'] / 1e6:.1f}M-token corpus | held-out perplexity {r['perplexity_before']:,.0f} → "
                    f"**{r['perplexity_after']:,.1f}** · {r['steps']} steps, {r['tokens'] / 1e6:.1f}M tokens, "
                    f"{r['tokens_per_s']:,.0f} tokens/s, MFU {r['mfu']:.0%} | `pretrain_scratch_mini.json` |")
    if r := _load("pretrain_downstream_sst2.json"):
        for sub in r["subsets"]:
            runs, seeds = sub["runs"], len(sub.get("seeds", [0]))
            mean = f"mean of {seeds} seeds: " if seeds > 1 else ""
            rows.append(f"| SST-2 {sub['train_rows']:,} rows: fine-tune the pretrained `mini` vs the same architecture "
                        f"from random init (same steps, seed) | {mean}dev acc **{runs['pretrained']['dev_accuracy']:.4f}** "
                        f"vs {runs['random_init']['dev_accuracy']:.4f} ({sub['gain_points']:+.1f} points) | "
                        "`pretrain_downstream_sst2.json` |")
    if r := _load("pretrain_continued_minilm.json"):
        rows.append(f"| Continued MLM pretraining of `minilm-l6`, {r['train_seconds'] / 60:.0f} min (fresh MLM head) | "
                    f"held-out perplexity {r['perplexity_before']:,.0f} → **{r['perplexity_after']:,.1f}** · "
                    f"{r['tokens_per_s']:,.0f} tokens/s | `pretrain_continued_minilm.json` |")
    return rows


def _ratio_rows() -> list[str]:
    """One row per side-by-side benchmark: its ratios (> 1 = TuneForge better) and which targets hold."""
    rows = []
    titles = {"serve_load.json": "HTTP serving, 32 clients × 60 s: dynamic batching on vs off",
              "bench_finetune_4000.json": "Fine-tune throughput vs HF Trainer (SST-2 4,000 rows, 1 epoch)",
              "bench_finetune_1000_quick.json": "Fine-tune throughput vs HF Trainer (quick: SST-2 1,000 rows, 1 epoch)",
              "bench_finetune_4000_bf16.json": "Fine-tune throughput vs HF Trainer, every run in bf16 autocast (SST-2 4,000 rows, 1 epoch, 3 seeds)",
              "bench_finetune_1000_bf16_quick.json": "Fine-tune throughput vs HF Trainer, every run in bf16 autocast (SST-2 1,000 rows, 1 epoch)",
              "bench_infer.json": "Inference vs `transformers.pipeline` (SST-2 dev)",
              "bench_infer_quick.json": "Inference vs `transformers.pipeline` (quick: 300 dev rows)",
              "bench_pretrain.json": "MLM pretraining tokens/s vs HF Trainer + DataCollatorForLanguageModeling",
              "bench_pretrain_quick.json": "MLM pretraining tokens/s vs HF Trainer (quick: 30 steps)",
              "probe_levers_step.json": "Fine-tune speed levers, each switched off alone: step time ratio (interleaved "
                                        "steps in one process, fp32; > 1 = the lever helps)",
              "probe_levers_step_bf16.json": "Fine-tune speed levers, each switched off alone: step time ratio "
                                             "(interleaved steps in one process, bf16 autocast)",
              "probe_levers_4000.json": "Fine-tune speed levers, each switched off alone: whole-run train-seconds "
                                        "ratio (SST-2 4,000 rows, 3 rounds; ±8% run-to-run noise)",
              "probe_levers_step_67349.json": "The word-embedding row table on all 67,349 SST-2 train rows (11,573 of "
                                              "30,522 rows in the table, pad row included): step time ratio with it off",
              "probe_levers_cost.json": "Fine-tune step cost, fixed + per padded token (least squares over the same "
                                        "SST-2 batches, fp32): the stock step the strongest Trainer runs over TuneForge's",
              "probe_levers_cost_bf16.json": "Fine-tune step cost as above, every step in bf16 autocast: the stock "
                                             "step over TuneForge's"}
    for name, title in titles.items():
        if not (r := _load(name)):
            continue
        ratios = ", ".join(f"{k} **{v:.2f}×**" for k, v in r["ratios"].items() if isinstance(v, (int, float)))
        met = r.get("targets_met") or {}
        hold = [k for k, v in met.items() if v is True and k != "all"]
        miss = [k for k, v in met.items() if v is False and k != "all"]
        other = [k for k, v in (met.get("other") or {}).items() if v is False]  # bounds beyond the targets
        targets = (f" · targets met: {', '.join(hold) or 'none'}" + (f"; missed: {', '.join(miss)}" if miss else "")
                   + (f"; other bounds missed: {', '.join(other)}" if other else "")) if met else ""
        rows.append(f"| {title} | {ratios}{targets} | `{name}` |")
    return rows


def render() -> str:
    lines = [START, "| benchmark | result | file |", "|---|---|---|"] + _sst2_rows() + _chinese_rows()
    lines += _pretrain_rows() + _ratio_rows() + [END]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    table = render()
    if args.write:
        readme = ROOT / "README.md"
        text = readme.read_text(encoding="utf-8")
        readme.write_text(re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: table, text, flags=re.S),
                          encoding="utf-8")
    print(table)


if __name__ == "__main__":
    main()

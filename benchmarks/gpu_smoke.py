"""GPU smoke run (issue 21): the same commands a CPU user types, on one CUDA GPU, with a results JSON.

Usage (from the repository root, on a machine with a CUDA GPU and TuneForge installed):
    bash benchmarks/gpu_smoke.sh                       # → benchmarks/results/gpu_smoke.json
    python -m benchmarks.gpu_smoke --data DIR --out X  # DIR holds sst2/ (train.tsv, dev.tsv); default ../shared/data

Three jobs, each `python -m tuneforge ...` in its own process with `--set runtime.device=cuda` and the default
precision (`auto` → bf16 on a bf16-capable GPU), read back from the run's summary.json:
1. finetune: `minilm-l6` on SST-2 (all training rows, --epochs, dev accuracy), samples/s.
2. pretrain: a masked-LM step-rate probe of the `base` preset on SST-2 sentences (--pretrain-steps steps, batch
   --pretrain-batch): tokens/s and MFU, against the peak the run measures on the GPU (a bf16 matmul) and against
   the GPU's nominal dense bf16 peak (--nominal-tflops, 989 for an H100/H200 SXM).
3. sft: `smollm2-135m` instruction tuning on the packaged demo chat rows for --sft-steps steps: tokens/s.
A job that fails is recorded with the end of its log; the script goes on to the next. Nothing here runs in CI.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import OFFLINE_ENV, RESULTS, ROOT, SHARED_DATA, environment, guard_output, shown, write_result

DEMO_CHAT = ROOT / "src" / "tuneforge" / "resources" / "demo" / "chat.jsonl"


def jobs(args, work: Path) -> dict[str, list[str]]:
    """{job name: tuneforge argv}; each writes its run folder work/<job name>."""
    sst2, cuda = Path(args.data) / "sst2", ["--set", f"runtime.device={args.device}"]
    corpus = work / "sst2_sentences.txt"
    if (sst2 / "train.tsv").is_file():
        rows = (sst2 / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]
        corpus.write_text("\n".join(r.split("\t")[0] for r in rows) + "\n", encoding="utf-8")
    return {
        "finetune_minilm_sst2": ["finetune", "--train", str(sst2 / "train.tsv"), "--validation", str(sst2 / "dev.tsv"),
                                 "--test", str(sst2 / "dev.tsv"), "--text-column", "text,sentence", "--model", "minilm-l6",
                                 "--output",
                                 str(work / "finetune_minilm_sst2"), "--overwrite", *cuda,
                                 "--set", f"train.epochs={args.epochs}"],
        "pretrain_mlm_base": ["pretrain", "--corpus", str(corpus), "--preset", "base", "--output",
                              str(work / "pretrain_mlm_base"), "--overwrite", *cuda, "--set",
                              f"train.max_steps={args.pretrain_steps}", "--set",
                              f"train.batch_size={args.pretrain_batch}"],
        "sft_smollm2": ["finetune", "--task", "sft", "--train", str(DEMO_CHAT), "--model", "smollm2-135m",
                        "--output", str(work / "sft_smollm2"), "--overwrite", *cuda, "--set",
                        f"train.max_steps={args.sft_steps}"],
    }


def run_job(argv: list[str], run_dir: Path, nominal_tflops: float) -> dict:
    log = run_dir.with_name(run_dir.name + ".log")
    t0 = time.perf_counter()
    with open(log, "w", encoding="utf-8") as fh:
        proc = subprocess.run([sys.executable, "-m", "tuneforge", *argv], stdout=fh, stderr=subprocess.STDOUT,
                              env={**os.environ, **OFFLINE_ENV}, cwd=ROOT)
    out = {"command": "tuneforge " + " ".join(argv), "wall_seconds": round(time.perf_counter() - t0, 1),
           "exit_code": proc.returncode}
    summary_file = run_dir / "summary.json"
    if proc.returncode or not summary_file.is_file():
        out["log_tail"] = log.read_text(encoding="utf-8", errors="replace")[-2000:]
        return out
    s = json.loads(summary_file.read_text(encoding="utf-8"))
    out.update({k: s.get(k) for k in ("metrics", "steps", "train_seconds", "samples_per_s", "tokens_per_s", "mfu",
                                      "peak_flops", "flops_per_token")})
    if s.get("flops_per_token") and s.get("tokens_per_s"):
        out["mfu_vs_nominal_bf16_peak"] = round(s["tokens_per_s"] * s["flops_per_token"] / (nominal_tflops * 1e12), 4)
    return out


def gpu() -> dict:
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here: this smoke run needs one (CI never runs it)")
    p = torch.cuda.get_device_properties(0)
    return {"name": p.name, "memory_gib": round(p.total_memory / 2**30, 1), "count": torch.cuda.device_count(),
            "bf16": torch.cuda.is_bf16_supported(), "cuda": torch.version.cuda}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.environ.get("TUNEFORGE_DATA", str(SHARED_DATA)))
    ap.add_argument("--work", default=str(ROOT / "runs" / "gpu-smoke"))
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--pretrain-steps", type=int, default=200)
    ap.add_argument("--pretrain-batch", type=int, default=128)
    ap.add_argument("--sft-steps", type=int, default=30)
    ap.add_argument("--nominal-tflops", type=float, default=989.0, help="dense bf16 peak of the GPU (H100/H200 SXM)")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"],
                    help="cpu: check the plumbing here with small --epochs/--*-steps (the result is not evidence)")
    ap.add_argument("--only", default="", help="comma list of job names to run (default all)")
    ap.add_argument("--out", default=str(RESULTS / "gpu_smoke.json"))
    ap.add_argument("--allow-dirty", action="store_true")
    args = ap.parse_args()
    out = Path(args.out)
    started = guard_output(out, args.allow_dirty)
    device = gpu() if args.device == "cuda" else {"name": "cpu (plumbing check, not a GPU result)"}
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    wanted = {n for n in args.only.split(",") if n}
    results = {}
    for name, argv in jobs(args, work).items():
        if wanted and name not in wanted:
            continue
        print(f"{name}: tuneforge {' '.join(argv)}", flush=True)
        results[name] = run_job(argv, work / name, args.nominal_tflops)
        print(json.dumps(results[name], indent=1)[:1500], flush=True)
    result = {"benchmark": "gpu_smoke", "gpu": device, "nominal_bf16_tflops": args.nominal_tflops, "jobs": results,
              "all_ran": all(r.get("exit_code") == 0 for r in results.values()),
              "environment": environment(extra=("sacrebleu",))}
    print(f"wrote {shown(write_result(out, result, started, args.allow_dirty))}")


if __name__ == "__main__":
    main()

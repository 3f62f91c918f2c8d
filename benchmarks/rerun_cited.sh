#!/usr/bin/env bash
# Rerun, on a committed clean tree, every result the README's benchmark table cites, one after another (nothing
# else may run on the machine meanwhile: two cores make every ratio lie). Each script refuses to write into
# benchmarks/results/ from a dirty tree. Order: the short ones first, the long fine-tune comparisons last.
# Usage (repository root): bash benchmarks/rerun_cited.sh [SERVE_SECONDS]   (~60 min on the 2-core machine)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SERVE_SECONDS=${1:-30}
# bf16 only where the CPU computes it natively (avx512_bf16/AMX); elsewhere it is emulated and 100x slower.
PRECISION=$(grep -qE "avx512_bf16|amx_bf16" /proc/cpuinfo && echo bf16 || echo fp32)
export HF_HUB_OFFLINE=1
step() { echo "== $(date -u +%H:%M:%S) $*"; }

step "inference vs transformers.pipeline (quick: 300 dev rows)"
$PY -m benchmarks.bench_infer --rows 300 --rounds 2 --out benchmarks/results/bench_infer_quick.json
step "HTTP serving, PyTorch: dynamic batching on vs off"
$PY -m benchmarks.bench_serve --seconds "$SERVE_SECONDS"
step "HTTP serving, ONNX int8 export of the same classifier"
MODEL=$($PY -c "from benchmarks.common import serve_model; print(serve_model(None))")
rm -rf runs/bench-serve-int8
$PY -m tuneforge export --model "$MODEL" --output runs/bench-serve-int8 --quantize int8 >/dev/null
$PY -m benchmarks.bench_serve --seconds "$SERVE_SECONDS" --model runs/bench-serve-int8 \
    --out benchmarks/results/serve_load_onnx_int8.json
step "MLM pretraining tokens/s vs HF Trainer (quick: 30 steps)"
$PY -m benchmarks.bench_pretrain --steps 30 --precision "$PRECISION" --out benchmarks/results/bench_pretrain_quick.json
step "fine-tune 4,000 rows x 3 seeds, fp32"
$PY -m benchmarks.bench_finetune --train-rows 4000 --seeds 42,43,44
if [ "$PRECISION" = bf16 ]; then
  step "fine-tune 4,000 rows x 3 seeds, bf16 (the precision auto picks on this CPU)"
  $PY -m benchmarks.bench_finetune --train-rows 4000 --seeds 42,43,44 --precision bf16
fi
step "done"

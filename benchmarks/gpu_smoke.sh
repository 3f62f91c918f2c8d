#!/usr/bin/env bash
# GPU smoke run (issue 21): fine-tune minilm-l6 on SST-2, an MLM step-rate probe of the `base` preset (MFU against
# the GPU's bf16 peak) and SFT steps of smollm2-135m, each on one CUDA GPU; writes benchmarks/results/gpu_smoke.json.
# Needs: a CUDA build of torch==2.13.0 and TuneForge installed (pip install -e .), SST-2 under ../shared/data/sst2
# (or TUNEFORGE_DATA=DIR holding sst2/). Extra arguments go to benchmarks/gpu_smoke.py (--help lists them).
# CI never runs this. Usage: bash benchmarks/gpu_smoke.sh [--allow-dirty] [--out FILE] [...]
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
exec "$PY" -m benchmarks.gpu_smoke "$@"

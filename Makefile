# TuneForge: `make quickstart` and `make test` each set up .venv from scratch, offline-friendly.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup quickstart test test-slow bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and pinned: an open range would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

quickstart: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/tuneforge quickstart --output runs/quickstart

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q --durations=15

test-slow: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m slow

# Quick versions of the benchmarks (full sizes: see benchmarks/README.md). ~15 min on 2 cores.
bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/bench_finetune.py --train-rows 1000 --epochs 1 --tag quick
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/bench_infer.py --rows 300 --rounds 2 --out benchmarks/results/bench_infer_quick.json
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/bench_pretrain.py --steps 30 --out benchmarks/results/bench_pretrain_quick.json

clean:
	rm -rf $(VENV) runs

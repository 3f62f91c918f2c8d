"""Two processes (torchrun, gloo on CPU) train the same model as one process: the batch size is global."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tfi_helpers import (
    build_encoder,
    cli_env,
    describe,
    fp_tolerance,
    run_cli,
    training_losses,
    validation_records,
    write_toy_data,
)

# slow: torchrun starts three fresh processes per run. Nothing in process can stand in for two ranks; the
# single-process training path they are compared with: test_finetune_cli.py, test_pretrain.py.
pytestmark = pytest.mark.slow

# Dropout off so one and two processes compute the same function; an explicit global batch size; fp32, because
# bf16 rounding (auto on CPUs with native bf16) moves with the gradient reduction order more than the tolerance.
SETTINGS = ["--set", "runtime.precision=fp32", "--set", "train.batch_size=16", "--set", "train.epochs=6", "--set", "train.learning_rate=0.003",
            "--set", "train.early_stopping_patience=0", "--set", "eval.every_steps=20",
            "--set", "runtime.log_every_steps=10", "--set", "runtime.progress=false", "--set", "runtime.threads=1",
            "--set", "runtime.device=cpu"]  # gloo on CPU, also where a GPU exists


TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "tuneforge"]
PRETRAIN = ["pretrain", "--corpus", "corpus.txt", "--preset", "tiny", "--output", "pt",
            "--set", "tokenizer.vocab_size=150", "--set", "data.block_size=32", "--set", "train.batch_size=8",
            "--set", "train.budget_minutes=0.05", "--set", "train.max_steps=400", "--set", "eval.every_steps=4",
            "--set", "runtime.progress=false", "--set", "runtime.threads=1", "--set", "runtime.device=cpu"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Both torchrun jobs (the two-rank fine-tune and the two-rank pretraining) start at once, and the one-process
    reference fine-tune runs in this process meanwhile: launchers, imports and the gloo rendezvous leave the cores
    idle part of the time."""
    from test_pretrain import write_corpus

    base = tmp_path_factory.mktemp("multiprocess")
    write_toy_data(base)
    model = build_encoder(base / "tiny-nodropout", layers=2, dropout=0.0)
    pretrain_dir = tmp_path_factory.mktemp("multiprocess_pretrain")
    write_corpus(pretrain_dir / "corpus.txt", 300)
    args = ["finetune", "--train", "train.csv", "--validation", "val.csv", "--test", "test.csv",
            "--model", str(model), *SETTINGS]
    jobs = {"two": ([*TORCHRUN, *args, "--output", "two"], base), "pt": ([*TORCHRUN, *PRETRAIN], pretrain_dir)}
    procs = {name: subprocess.Popen(cmd, cwd=cwd, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True) for name, (cmd, cwd) in jobs.items()}
    results = {}
    try:
        results["one"] = run_cli([*args, "--output", "one"], cwd=base)
    finally:
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=400)
            results[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    for name, proc in results.items():
        assert proc.returncode == 0, f"{name}:\n{describe(proc)}"
    return {"base": base, "one": base / "one", "two": base / "two", "pt": pretrain_dir / "pt",
            **{f"{k}_proc": v for k, v in results.items()}}


def test_ranks_end_with_identical_weights(runs):
    manifest = json.loads((runs["two"] / "final" / "tuneforge.json").read_text())
    checksums = manifest["rank_weight_checksums"]
    assert len(checksums) == 2
    assert checksums[0] == checksums[1]


def test_main_process_alone_writes_the_log(runs):
    steps = [s for s, _ in training_losses(runs["two"])]
    assert steps == list(range(10, 61, 10))  # 6 epochs × 160 // 16 global batch; no duplicated lines
    assert [r["step"] for r in validation_records(runs["two"])] == [20, 40, 60]
    summary = json.loads((runs["two"] / "summary.json").read_text())
    assert summary["steps"] == 60


def test_two_processes_match_one_process(runs):
    one, two = training_losses(runs["one"]), training_losses(runs["two"])
    assert [s for s, _ in one] == [s for s, _ in two]

    def tol(step: int, rows: int = 0) -> float:
        """The same fp32 training in another order (each rank's half-batch gradient, all-reduced), accumulated over
        `step` steps: per step a weight gradient sums 16 rows x 8 tokens, and the model 2 layers over 8 tokens
        (32 hidden, 64 FFN), pooler and classifier (32 each), softmax over 2; then a loss's mean over `rows`."""
        return fp_tolerance(np.float32, step * (16 * 8 + 2 * (8 + 32 + 64) + 2 * 32 + 2) + rows)

    for (step, a), (_, b) in zip(one, two):
        # abs: both logs round the loss to 5 decimals
        assert b == pytest.approx(a, rel=tol(step), abs=1e-5), f"step {step}: 1 process {a}, 2 processes {b}"
    val_one, val_two = validation_records(runs["one"]), validation_records(runs["two"])
    assert [r["accuracy"] for r in val_one] == [r["accuracy"] for r in val_two]
    for a, b in zip(val_one, val_two):
        assert b["loss"] == pytest.approx(a["loss"], rel=tol(a["step"], rows=40))
        assert b["samples"] == a["samples"] == 40  # every validation row counted once across the ranks
    assert one[-1][1] < 0.5 * one[0][1]  # it learned, so the comparison covers real updates
    s_one = json.loads((runs["one"] / "summary.json").read_text())
    s_two = json.loads((runs["two"] / "summary.json").read_text())
    assert s_two["metrics"]["validation"]["accuracy"] == s_one["metrics"]["validation"]["accuracy"]
    assert s_two["metrics"]["test"]["accuracy"] == s_one["metrics"]["test"]["accuracy"]
    assert s_two["metrics"]["test"]["samples"] == 40


def test_two_process_pretraining_with_a_budget(runs):
    """MLM on two ranks: one tokenizer and one cache built by rank 0, the same budget stop on both ranks, one log."""
    proc, pt = runs["pt_proc"], runs["pt"]
    summary = json.loads((pt / "summary.json").read_text())
    assert summary["stop_reason"] in ("budget", "max_steps") and summary["steps"] > 0
    assert proc.stdout.count("held-out perplexity") == 1  # printed by the main process only
    steps = [s for s, _ in training_losses(pt)]
    assert steps == sorted(set(steps))  # no line written twice
    from transformers import AutoModelForMaskedLM

    assert AutoModelForMaskedLM.from_pretrained(pt / "final").config.hidden_size == 128

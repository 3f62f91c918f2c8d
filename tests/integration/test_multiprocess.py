"""Two processes (torchrun, gloo on CPU) train the same model as one process: the batch size is global."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tfi_helpers import build_encoder, cli_env, describe, training_losses, validation_records, write_toy_data

# Dropout off so one and two processes compute the same function; an explicit global batch size; fp32, because
# bf16 rounding (auto on CPUs with native bf16) moves with the gradient reduction order more than the tolerance.
SETTINGS = ["--set", "runtime.precision=fp32", "--set", "train.batch_size=16", "--set", "train.epochs=6", "--set", "train.learning_rate=0.003",
            "--set", "train.early_stopping_patience=0", "--set", "eval.every_steps=20",
            "--set", "runtime.log_every_steps=10", "--set", "runtime.progress=false", "--set", "runtime.threads=1",
            "--set", "runtime.device=cpu"]  # gloo on CPU, also where a GPU exists


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("multiprocess")
    write_toy_data(base)
    model = build_encoder(base / "tiny-nodropout", layers=2, dropout=0.0)
    args = ["-m", "tuneforge", "finetune", "--train", "train.csv", "--validation", "val.csv", "--test", "test.csv",
            "--model", str(model), *SETTINGS]
    two = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args,
           "--output", "two"]
    one = [sys.executable, *args, "--output", "one"]
    # Both at once: the launcher and the gloo rendezvous leave the cores idle part of the time.
    procs = {name: subprocess.Popen(cmd, cwd=base, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True) for name, cmd in (("two", two), ("one", one))}
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=400)
        results[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    for name, proc in results.items():
        assert proc.returncode == 0, f"{name}:\n{describe(proc)}"
    return {"base": base, "one": base / "one", "two": base / "two", **{f"{k}_proc": v for k, v in results.items()}}


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
    for (step, a), (_, b) in zip(one, two):
        assert b == pytest.approx(a, rel=1e-3, abs=1e-4), f"step {step}: 1 process {a}, 2 processes {b}"
    val_one, val_two = validation_records(runs["one"]), validation_records(runs["two"])
    assert [r["accuracy"] for r in val_one] == [r["accuracy"] for r in val_two]
    for a, b in zip(val_one, val_two):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-3, abs=1e-4)
        assert b["samples"] == a["samples"] == 40  # every validation row counted once across the ranks
    assert one[-1][1] < 0.5 * one[0][1]  # it learned, so the comparison covers real updates
    s_one = json.loads((runs["one"] / "summary.json").read_text())
    s_two = json.loads((runs["two"] / "summary.json").read_text())
    assert s_two["metrics"]["validation"]["accuracy"] == s_one["metrics"]["validation"]["accuracy"]
    assert s_two["metrics"]["test"]["accuracy"] == s_one["metrics"]["test"]["accuracy"]
    assert s_two["metrics"]["test"]["samples"] == 40


def test_two_process_pretraining_with_a_budget(tmp_path):
    """MLM on two ranks: one tokenizer and one cache built by rank 0, the same budget stop on both ranks, one log."""
    from test_pretrain import write_corpus

    write_corpus(tmp_path / "corpus.txt", 300)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "tuneforge",
           "pretrain", "--corpus", "corpus.txt", "--preset", "tiny", "--output", "pt",
           "--set", "tokenizer.vocab_size=150", "--set", "data.block_size=32", "--set", "train.batch_size=8",
           "--set", "train.budget_minutes=0.05", "--set", "train.max_steps=400", "--set", "eval.every_steps=4",
           "--set", "runtime.progress=false", "--set", "runtime.threads=1", "--set", "runtime.device=cpu"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, describe(proc)
    summary = json.loads((tmp_path / "pt" / "summary.json").read_text())
    assert summary["stop_reason"] in ("budget", "max_steps") and summary["steps"] > 0
    assert proc.stdout.count("held-out perplexity") == 1  # printed by the main process only
    steps = [s for s, _ in training_losses(tmp_path / "pt")]
    assert steps == sorted(set(steps))  # no line written twice
    from transformers import AutoModelForMaskedLM

    assert AutoModelForMaskedLM.from_pretrained(tmp_path / "pt" / "final").config.hidden_size == 128

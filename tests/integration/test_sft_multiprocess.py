"""The same tiny SFT config on two processes (torchrun, gloo on CPU): with DDP, and with FSDP through Accelerate
(FSDP2, LoRA and full fine-tuning), each following the one-process run with the same global batch."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sft_helpers import FFN, HIDDEN, VOCAB, build_tiny_chat_lm, sentiment_rows, write_jsonl
from tfi_helpers import cli_env, describe, fp_tolerance, run_cli, training_losses, validation_records

# slow: torchrun starts three fresh processes per run, and nothing in process stands in for two ranks. The
# one-process SFT path they are compared with: test_sft_cli.py; packing and the loss: unit test_sft_pack.py.
pytestmark = pytest.mark.slow

# No dropout (LoRA's included), so one and two processes compute the same function; fp32; one thread per process.
SFT = ["finetune", "--task", "sft", "--train", "train.jsonl", "--validation", "val.jsonl", "--model", "lm",
       "--set", "data.max_length=128", "--set", "train.batch_size=8", "--set", "train.max_steps=12",
       "--set", "train.epochs=10",
       "--set", "train.learning_rate=0.003", "--set", "eval.every_steps=4", "--set", "eval.generate_samples=4",
       "--set", "train.early_stopping_patience=0", "--set", "runtime.log_every_steps=2",
       "--set", "runtime.precision=fp32", "--set", "runtime.progress=false", "--set", "runtime.threads=1",
       "--set", "runtime.device=cpu"]
LORA = ["--lora", "--lora-rank", "4", "--lora-dropout", "0"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
FSDP_ENV = {"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2", "FSDP_AUTO_WRAP_POLICY": "TRANSFORMER_BASED_WRAP",
            "FSDP_TRANSFORMER_CLS_TO_WRAP": "LlamaDecoderLayer", "FSDP_STATE_DICT_TYPE": "FULL_STATE_DICT"}
LAUNCHER = str(Path(__file__).with_name("fsdp_cpu_launch.py"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The three two-process jobs start at once; the one-process references run in this process meanwhile."""
    base = tmp_path_factory.mktemp("sft-multiprocess")
    build_tiny_chat_lm(base / "lm")
    write_jsonl(base / "train.jsonl", sentiment_rows(80, 1))
    write_jsonl(base / "val.jsonl", sentiment_rows(16, 2))
    jobs = {"ddp_lora": ([*TORCHRUN, "-m", "tuneforge", *SFT, *LORA, "-o", "ddp_lora"], {}),
            "fsdp_lora": ([*TORCHRUN, LAUNCHER, *SFT, *LORA, "-o", "fsdp_lora"], FSDP_ENV),
            "fsdp_full": ([*TORCHRUN, LAUNCHER, *SFT, "-o", "fsdp_full"], FSDP_ENV)}
    procs = {name: subprocess.Popen(cmd, cwd=base, env=cli_env(**env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True) for name, (cmd, env) in jobs.items()}
    results = {}
    try:
        results["one_lora"] = run_cli([*SFT, *LORA, "-o", "one_lora"], cwd=base)
        results["one_full"] = run_cli([*SFT, "-o", "one_full"], cwd=base)
    finally:
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=600)
            results[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    for name, proc in results.items():
        assert proc.returncode == 0, f"{name}:\n{describe(proc)}"
    return {"base": base, **{name: base / name for name in results}, "procs": results}


def _tol(step: int) -> float:
    """fp32 training in another reduction order, accumulated over `step` steps: per step a gradient sums ~8 rows ×
    128 tokens, and the model 2 layers (hidden + FFN) and the vocabulary's softmax."""
    return fp_tolerance(np.float32, step * (8 * 128 + 2 * (HIDDEN + FFN) + VOCAB))


def _same_run(one: Path, two: Path) -> None:
    a, b = training_losses(one), training_losses(two)
    assert [s for s, _ in a] == [s for s, _ in b] == list(range(2, 13, 2))  # one log, no duplicated lines
    for (step, x), (_, y) in zip(a, b):
        assert y == pytest.approx(x, rel=_tol(step), abs=1e-5), f"step {step}: 1 process {x}, 2 processes {y}"
    va, vb = validation_records(one), validation_records(two)
    assert [r["step"] for r in va] == [r["step"] for r in vb] == [4, 8, 12]
    for ra, rb in zip(va, vb):
        assert rb["tokens"] == ra["tokens"]  # every held-out answer token counted once across the ranks
        assert rb["loss"] == pytest.approx(ra["loss"], rel=_tol(ra["step"]), abs=1e-5)


def _same_final(one: Path, two: Path) -> None:
    """final/ holds the same tensors, and the final held-out losses agree. (Weights are not compared value by value:
    Adam turns a rounding-sized difference in a near-zero gradient, as in LoRA's B at the start, into a step of
    the learning rate's size, which no float tolerance covers; the losses show the function is the same.)"""
    from safetensors import safe_open

    def shapes(folder: Path) -> dict:
        name = "adapter_model.safetensors" if (folder / "adapter_model.safetensors").exists() else "model.safetensors"
        with safe_open(str(folder / name), framework="pt") as fh:
            return {k: fh.get_slice(k).get_shape() for k in fh.keys()}

    assert shapes(one / "final") == shapes(two / "final")
    a, b = (json.loads((r / "summary.json").read_text())["metrics"] for r in (one, two))
    for split in ("validation", "test"):
        assert b[split]["tokens"] == a[split]["tokens"]
        assert b[split]["loss"] == pytest.approx(a[split]["loss"], rel=_tol(12), abs=1e-5)


@pytest.mark.parametrize("job", ["ddp_lora", "fsdp_lora"])
def test_two_process_lora_follows_one_process(runs, job):
    _same_run(runs["one_lora"], runs[job])
    _same_final(runs["one_lora"], runs[job])
    manifest = json.loads((runs[job] / "final" / "tuneforge.json").read_text())
    assert manifest["adapter"]["rank"] == 4 and (runs[job] / "final" / "adapter_config.json").exists()
    assert runs["procs"][job].stdout.count("model:  ") == 1  # the main process alone reports


def test_fsdp_full_fine_tuning_gathers_the_whole_model(runs):
    """Under FSDP no rank holds the model: the best weights, final/ and the generations come from gathered shards."""
    _same_run(runs["one_full"], runs["fsdp_full"])
    _same_final(runs["one_full"], runs["fsdp_full"])
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(runs["fsdp_full"] / "final")
    reference = AutoModelForCausalLM.from_pretrained(runs["one_full"] / "final")
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in reference.parameters())
    answers = json.loads((runs["fsdp_full"] / "report" / "metrics.json").read_text())["answers"]
    assert len(answers) == 4 and all(a["generation"] for a in answers)  # generated from the gathered model

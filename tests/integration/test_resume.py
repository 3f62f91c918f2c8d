"""Interrupted fine-tunes continue from the newest complete checkpoint and end exactly where an uninterrupted run ends."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tfi_helpers import (
    interrupt_after_checkpoints,
    assert_ok,
    assert_same_weights,
    cli_env,
    describe,
    read_jsonl,
    run_cli,
    training_losses,
    validation_records,
    write_toy_data,
)

# 160 rows / batch 16 = 10 steps per epoch; 4 epochs = 40 steps; evaluate + checkpoint every 5 steps. Selecting on
# the validation loss keeps the best (= final) weights late in the run, after the interruption.
OVERRIDES = ["train.epochs=4", "train.batch_size=16", "train.learning_rate=0.003", "train.early_stopping_patience=0",
             "eval.every_steps=5", "eval.metric=loss", "runtime.progress=false", "runtime.threads=1",
             "runtime.device=cpu"]


def _config(data: dict[str, Path], tiny_model: Path, output: Path):
    from tuneforge.config import FinetuneConfig, load_config

    base = {"output": str(output), "model": {"name": str(tiny_model)},
            "data": {"train": str(data["train"]), "validation": str(data["validation"]), "test": str(data["test"])}}
    return load_config(None, FinetuneConfig, OVERRIDES, base)


def _comparable(run: Path) -> list[dict]:
    timing = {"samples_per_s", "tokens_per_s", "mfu", "train_seconds", "rss_mb"}  # measurements of the machine
    return [{k: v for k, v in r.items() if k not in timing} for r in read_jsonl(run / "metrics.jsonl")]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_model):
    """The uninterrupted run (python API, in this process)."""
    from tuneforge.recipes.finetune import finetune

    base = tmp_path_factory.mktemp("resume_ref")
    data = write_toy_data(base)
    summary = finetune(_config(data, tiny_model, base / "run"))
    assert summary.steps == 40
    return {"data": data, "run": base / "run", "summary": summary}


def _interrupted_then_resumed(reference, tiny_model, tmp_path, monkeypatch, n: int) -> tuple[Path, dict, list[Path]]:
    from tuneforge.recipes.finetune import finetune
    from tuneforge.train.checkpoint import latest_checkpoint

    run = tmp_path / "run"
    saved = interrupt_after_checkpoints(monkeypatch, n)
    with pytest.raises(KeyboardInterrupt):
        finetune(_config(reference["data"], tiny_model, run))
    assert len(saved) == n
    assert not (run / "final").exists()
    assert latest_checkpoint(run) == run / "checkpoints" / f"step-{5 * n}"
    monkeypatch.undo()
    summary = finetune(_config(reference["data"], tiny_model, run), resume=True)
    return run, summary, saved


def test_resume_after_interrupt_gives_the_same_model(reference, tiny_model, tmp_path, monkeypatch):
    run, summary, _ = _interrupted_then_resumed(reference, tiny_model, tmp_path, monkeypatch, n=2)
    assert summary.steps == 40
    assert summary.best_step == reference["summary"].best_step
    assert summary.best_step > 10  # the final weights come from after the interruption
    assert_same_weights(reference["run"] / "final", run / "final")
    assert _comparable(run) == _comparable(reference["run"])  # the log continues seamlessly
    assert summary.metrics["test"]["accuracy"] == reference["summary"].metrics["test"]["accuracy"]


def test_resume_between_log_steps_keeps_the_loss_log(reference, tiny_model, tmp_path, monkeypatch):
    """Interrupted at step 15 (checkpoints every 5, loss lines every 10): the weights and the logged training
    losses must both match the uninterrupted run."""
    run, summary, _ = _interrupted_then_resumed(reference, tiny_model, tmp_path, monkeypatch, n=3)
    assert summary.steps == 40
    assert_same_weights(reference["run"] / "final", run / "final")
    assert validation_records(run) == validation_records(reference["run"])
    assert training_losses(run) == training_losses(reference["run"])


# slow: a real process, killed. Resuming from the newest complete checkpoint: test_resume_after_interrupt_gives_the_
# same_model and test_resume_between_log_steps_keeps_the_loss_log above (in process); unit test_checkpoint.py.
@pytest.mark.slow
def test_cli_resume_after_sigkill(tmp_path, tiny_model):
    """Kill -9 a real `python -m tuneforge` process as soon as a checkpoint is complete, then run the same command
    plus --resume (and the uninterrupted reference) through the CLI in this process."""
    data_dir = tmp_path / "data"
    write_toy_data(data_dir)
    for epochs in (4, 40):  # longer when the machine was fast enough to finish before the kill
        args = ["finetune", "--train", "data/train.csv", "--validation", "data/val.csv", "--test", "data/test.csv",
                "--model", str(tiny_model), "--set", f"train.epochs={epochs}", "--set", "train.batch_size=16",
                "--set", "train.learning_rate=0.003", "--set", "train.early_stopping_patience=0",
                "--set", "eval.every_steps=10", "--set", "eval.metric=loss", "--set", "runtime.progress=false",
                "--set", "runtime.threads=1", "--set", "runtime.device=cpu"]
        run = tmp_path / f"killed-{epochs}"
        log = open(tmp_path / f"killed-{epochs}.log", "w")
        proc = subprocess.Popen([sys.executable, "-m", "tuneforge", *args, "--output", run.name], cwd=tmp_path,
                                env=cli_env(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        killed = False
        while proc.poll() is None and time.monotonic() < deadline:
            if any((run / "checkpoints").glob("step-*/loop_state.json")):
                os.kill(proc.pid, signal.SIGKILL)
                killed = True
                break
            time.sleep(0.01)
        proc.wait(timeout=60)
        log.close()
        if killed and proc.returncode == -signal.SIGKILL and not (run / "final").exists():
            break
        assert killed or proc.returncode == 0, (tmp_path / f"killed-{epochs}.log").read_text()[-5000:]
        assert time.monotonic() < deadline, "no checkpoint appeared within 300 s"
    else:
        pytest.fail("the fine-tune finished before it could be killed, even with 80 epochs")
    assert not (run / "final").exists()
    killed_at = max(int(p.parent.name.split("-")[1]) for p in (run / "checkpoints").glob("step-*/loop_state.json"))

    resumed = run_cli([*args, "--output", run.name, "--resume"], cwd=tmp_path)
    assert_ok(resumed)
    assert "resuming from" in resumed.stderr and f"step-{killed_at}" in resumed.stderr, describe(resumed)

    reference = run_cli([*args, "--output", "reference"], cwd=tmp_path)
    assert_ok(reference)
    summary = json.loads((run / "summary.json").read_text())
    ref_summary = json.loads((tmp_path / "reference" / "summary.json").read_text())
    assert summary["steps"] == ref_summary["steps"] == epochs * 10
    assert summary["best_step"] == ref_summary["best_step"] > killed_at
    assert_same_weights(tmp_path / "reference" / "final", run / "final")
    assert training_losses(run) == training_losses(tmp_path / "reference")
    assert validation_records(run) == validation_records(tmp_path / "reference")

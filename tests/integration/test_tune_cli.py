"""`tuneforge tune` through the CLI: bad input is one line, exit 2 (fast, in process); a real search whose trials are
`tuneforge finetune` children of the tiny model, and the same search on a Ray cluster started by the test (slow).
The search logic itself (defaults trial, pruning, resume, report) is tested fast with a stand-in trainer in
tests/unit/recipes/test_tune.py."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from tfi_helpers import assert_ok, assert_user_error, cli_env, run_cli, run_subprocess, write_toy_data
from tuneforge.config import FinetuneConfig, load_config

BASE = """model: {{name: {model}}}
data: {{train: data/train.csv, validation: data/val.csv, test: data/test.csv}}
train: {{epochs: 3, learning_rate: 0.003, early_stopping_patience: 0}}
eval: {{baseline: false, bootstrap_samples: 0}}
runtime: {{device: cpu, threads: 1, progress: false}}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def search_dir(tmp_path, tiny_model) -> Path:
    write_toy_data(tmp_path / "data")
    (tmp_path / "base.yaml").write_text(BASE.format(model=tiny_model))
    return tmp_path


def _study(folder: Path, name: str = "search"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{folder / name / 'study.db'}")


def test_tune_help_lists_the_search_flags(tmp_path):
    proc = run_cli(["tune", "--help"], tmp_path)
    assert_ok(proc)
    for flag in ("--trials", "--space", "--lr", "--batch-size", "--parallel", "--storage", "--backend", "--address",
                 "--resume"):
        assert flag in proc.stdout, flag


def test_bad_space_and_ranges_are_one_line(tmp_path):
    (tmp_path / "base.yaml").write_text("data: {train: train.csv}\n")
    (tmp_path / "space.yaml").write_text("train.learnin_rate: {low: 1e-5, high: 1e-3, log: true}\n")
    assert_user_error(run_cli(["tune", "base.yaml", "--space", "space.yaml"], tmp_path),
                      "space.yaml: unknown parameter 'train.learnin_rate'. Did you mean 'train.learning_rate'?")
    assert_user_error(run_cli(["tune", "base.yaml", "--lr", "1e-3:1e-5"], tmp_path),
                      "--lr 1e-3:1e-5: train.learning_rate: empty range")
    assert_user_error(run_cli(["tune", "base.yaml", "--batch-size", "16,32", "--backend", "spark"], tmp_path),
                      "tune: backend:")
    port = _free_port()
    assert_user_error(run_cli(["tune", "base.yaml", "--lr", "1e-4:1e-2", "--backend", "ray", "--address",
                               f"127.0.0.1:{port}"], tmp_path), f"--address 127.0.0.1:{port}: no Ray cluster")
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_a_real_search_of_three_trials_and_best_yaml_reproduces_the_best_trial(search_dir):
    """Slow (~1 min: four tiny fine-tunes as real processes). Faster test of the same logic: tests/unit/recipes/
    test_tune.py::test_trial_0_is_the_defaults_and_best_yaml_is_a_ready_config (a stand-in trainer)."""
    proc = run_subprocess(["tune", "base.yaml", "--trials", "3", "--lr", "1e-3:1e-2:log", "--output", "search",
                           "--prune-startup", "1", "--prune-warmup", "1"], search_dir, timeout=600)
    assert_ok(proc)
    assert "best config: search/best.yaml" in proc.stdout and "report: search/report/report.html" in proc.stdout
    trials = _study(search_dir).get_trials()
    assert len(trials) == 3 and {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    for t in trials:
        folder = search_dir / f"search/trial-{t.number:04d}"
        values = _validation(folder)
        seen = [v for _, v in sorted(t.intermediate_values.items())]
        assert seen == values[:len(seen)] and seen  # what the parent read, in order
        if t.state == TrialState.COMPLETE:
            assert (folder / "final" / "tuneforge.json").is_file() and t.value == max(values) and len(values) == 3
        else:  # stopped before its end (an evaluation or final/ may slip in before the stop; summary.json is last)
            assert not (folder / "summary.json").exists()
    assert trials[0].state == TrialState.COMPLETE and trials[0].params == {}  # the defaults, never pruned
    cfg = load_config(search_dir / "search/best.yaml", FinetuneConfig)
    best = max((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: (t.value, -t.number))
    assert cfg.train.learning_rate == best.params.get("train.learning_rate", 0.003)
    assert_ok(run_subprocess(["finetune", "search/best.yaml"], search_dir, timeout=300))
    again = search_dir / "search/best"
    assert _validation(again) == [v for _, v in sorted(best.intermediate_values.items())]  # same seed, same run
    assert _summary(again) == _summary(search_dir / f"search/trial-{best.number:04d}")
    assert (search_dir / "search/report/history.png").is_file()


def _validation(run: Path) -> list[float]:
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["accuracy"] for r in records if r.get("split") == "validation"]


def _summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())["metrics"]


class _RayHead:
    """`ray start --head --block` on loopback with its own temp dir: stopping this process (by its pid) stops the
    Ray processes it started, and no others on the machine (`ray stop` would stop every Ray of this user)."""

    def __init__(self, cpus: int = 2):
        # Token authentication, with the token in the environment of the head and of the search alike: what Ray 2.5x
        # does by default once ~/.ray/auth_token exists, made explicit so the test does not depend on that file.
        self.env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
        self.port = _free_port()
        self.temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths have a length limit
        ray = Path(sys.executable).with_name("ray")
        self.proc = subprocess.Popen(
            [str(ray), "start", "--head", "--num-cpus", str(cpus), "--port", str(self.port), "--node-ip-address",
             "127.0.0.1", "--temp-dir", self.temp, "--include-dashboard", "false", "--disable-usage-stats", "--block"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=cli_env(**self.env))
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True).start()

    def wait(self, timeout: float = 120) -> str:
        end = time.time() + timeout
        while time.time() < end:
            if any("Ray runtime started" in ln for ln in self.lines):
                return f"127.0.0.1:{self.port}"
            if self.proc.poll() is not None:
                break
            time.sleep(0.5)
        raise RuntimeError("ray start did not come up:\n" + "".join(self.lines[-30:]))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.temp, ignore_errors=True)


@pytest.mark.slow
def test_the_same_search_on_a_ray_cluster(search_dir):
    """Slow (~1-2 min: a Ray head with 2 CPUs, two tiny fine-tunes). Faster tests of the same search:
    tests/unit/recipes/test_tune.py; of the address check: test_bad_space_and_ranges_are_one_line."""
    pytest.importorskip("ray.tune")
    head = _RayHead(cpus=2)
    try:
        address = head.wait()
        proc = run_subprocess(["tune", "base.yaml", "--trials", "2", "--lr", "1e-3:1e-2:log", "--output", "search",
                               "--backend", "ray", "--address", address, "--parallel", "2"], search_dir, timeout=600,
                              OMP_NUM_THREADS="1", **head.env)
    finally:
        head.stop()
    assert_ok(proc)
    assert "search on Ray (2 CPUs): 2 trials, 2 at a time, 1 thread each" in proc.stderr
    trials = _study(search_dir).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2 and trials[0].params == {}
    assert set(trials[1].params) == {"train.learning_rate"}
    for t in trials:
        folder = search_dir / f"search/trial-{t.number:04d}"
        run = yaml.safe_load((folder / "config.yaml").read_text())
        assert run["train"]["learning_rate"] == t.params.get("train.learning_rate", 0.003)
        assert (folder / "final" / "tuneforge.json").is_file() and (folder / "summary.json").is_file()
        assert t.value == max(_validation(folder))
        assert list(t.intermediate_values) == [1, 2, 3]  # one report per evaluation
    load_config(search_dir / "search/best.yaml", FinetuneConfig)
    assert "vs" in (search_dir / "search/report/report.md").read_text()
    assert not os.path.exists(head.temp)

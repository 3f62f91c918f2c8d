"""One trial of a search: its config file (the base config plus the trial's values, in the trial's own run folder)
and the `python -m tuneforge finetune` child that trains it, watched through the validation records of its
metrics.jsonl and stopped when the search prunes it."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tuneforge.config import FinetuneConfig
from tuneforge.config.loader import validate
from tuneforge.model.artifact import atomic_write_text
from tuneforge.recipes.tune_space import with_values

TRIAL_CONFIG = "trial.yaml"  # what the child was started with (the run writes its resolved config.yaml beside it)
TRIAL_LOG = "tune.log"  # the child's stdout and stderr

# The children running now, so an interrupt of the search stops them all (a child outlives a parent that dies).
_LIVE: set[subprocess.Popen] = set()
_LIVE_LOCK = threading.Lock()
STOPPING = threading.Event()  # set by stop_all: trials that see it mark themselves interrupted


def trial_folder(out: Path, number: int) -> Path:
    return Path(out) / f"trial-{number:04d}"


def trial_config(base: dict, values: dict[str, Any], folder: Path, threads: int | None) -> dict:
    """The raw config of a trial: the base with the trial's values, its own output folder, no progress bar, and
    `threads` CPU threads unless the base sets them (runtime never changes the science)."""
    raw = with_values(base, values)
    raw["output"] = str(folder)
    runtime = raw.setdefault("runtime", {})
    runtime["progress"] = False
    if threads and runtime.get("threads") is None:
        runtime["threads"] = threads
    return raw


def write_trial_config(base: dict, values: dict[str, Any], folder: Path, threads: int | None) -> Path:
    raw = trial_config(base, values, folder, threads)
    path = Path(folder) / TRIAL_CONFIG
    validate(raw, FinetuneConfig, str(path))  # check_space checked each value alone; this checks them together
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))
    return path


def finetune_command(config: Path) -> list[str]:
    return [sys.executable, "-m", "tuneforge", "finetune", str(config)]


def child_env(threads: int | None) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false",
           "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)  # BLAS and tokenizers pools too, not only torch's
    return env


class ValidationTail:
    """The validation metric of a run's metrics.jsonl, record by record as the run writes them (whole lines only).
    `metric` None: the run's own eval.metric, read from the config.yaml it resolves before training."""

    def __init__(self, folder: Path, metric: str | None):
        self.folder, self.metric, self.offset = Path(folder), metric, 0

    def read(self) -> list[float]:
        path = self.folder / "metrics.jsonl"
        if not path.is_file():
            return []
        with open(path, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        records = [json.loads(line) for line in data[:end].splitlines() if line.strip()]
        return [float(r[self._metric(r)]) for r in records if r.get("split") == "validation"]

    def _metric(self, record: dict) -> str:
        if self.metric is None:
            resolved = yaml.safe_load((self.folder / "config.yaml").read_text(encoding="utf-8"))
            self.metric = resolved["eval"]["metric"]
        if self.metric not in record:
            raise RuntimeError(f"{self.folder / 'metrics.jsonl'}: validation records have no '{self.metric}'.")
        return self.metric


@dataclass
class TrialRun:
    """How a trial's child ended: its exit code, whether the search stopped it, and the validation values in
    order."""
    returncode: int | None
    pruned: bool
    values: list[float] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None  # the child's error line when it failed
    metric: str | None = None  # the metric the values are of


def run_trial(command: list[str], folder: Path, report: Callable[[int, float], bool], metric: str | None,
              cwd: str | Path | None = None, env: dict[str, str] | None = None, poll: float = 0.5,
              grace: float = 10.0) -> TrialRun:
    """Start the child, hand each new validation value to `report(evaluation, value)` (1-based) and stop the child
    when `report` answers True (pruned). Values that arrive after the child ended are still reported, but cannot
    prune it. The child is stopped whatever ends the wait (an interrupt too)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tail, run, start = ValidationTail(folder, metric), TrialRun(None, False), time.time()
    with open(folder / TRIAL_LOG, "wb") as log:
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        with _LIVE_LOCK:
            _LIVE.add(proc)
        try:
            while True:
                finished = _wait(proc, poll)
                for value in tail.read():
                    run.values.append(value)
                    if report(len(run.values), value) and not finished:
                        run.pruned = True
                        break
                if run.pruned or finished:
                    break
        finally:
            if proc.poll() is None:
                _stop(proc, grace)
            with _LIVE_LOCK:
                _LIVE.discard(proc)
    run.returncode, run.seconds, run.metric = proc.returncode, time.time() - start, tail.metric
    if run.returncode and not run.pruned:
        run.error = _error_line(folder / TRIAL_LOG)
    return run


def stop_all() -> None:
    """Stop every running child (SIGTERM) and tell the trials the search is ending."""
    STOPPING.set()
    with _LIVE_LOCK:
        procs = list(_LIVE)
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()


def stopping_on_signals():
    """SIGTERM and SIGINT to the search stop its children first, then raise KeyboardInterrupt in the main thread:
    with trials in threads, the main thread would otherwise wait for their children to finish. Returns a function
    that puts the previous handlers back."""
    def handler(signum, frame):
        stop_all()
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    STOPPING.clear()
    return lambda: [signal.signal(sig, old) for sig, old in previous.items()]


def _wait(proc: subprocess.Popen, seconds: float) -> bool:
    try:
        proc.wait(timeout=seconds)
        return True
    except subprocess.TimeoutExpired:
        return False


def _stop(proc: subprocess.Popen, grace: float) -> None:
    proc.terminate()
    if not _wait(proc, grace):
        proc.kill()
        proc.wait()


def _error_line(log: Path) -> str:
    """The child's `error: ...` line (a user error), else its last line (a traceback's exception)."""
    lines = [ln.strip() for ln in log.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    return (errors or lines or ["no output"])[-1]

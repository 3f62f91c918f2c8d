"""A stand-in for `tuneforge finetune` in search tests: run as `python tests/tune_helpers.py TRIAL.yaml`, it starts in
~0.1 s (no torch), writes a run folder's pid file, config.yaml, one validation record per "epoch" and summary.json, with an
accuracy that is a known function of the learning rate, so a search's choices, pruning and resume can be checked
in seconds. The real child is checked by the slow tests in tests/integration/test_tune_cli.py.

Knobs: train.epochs (records, default 6); env FAKE_TRAINER_DELAY (seconds between records, default 0.05);
train.batch_size 7 crashes (exit 1), 13 is a user error (exit 2)."""
from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

BEST_LR = 3e-3
SCRIPT = Path(__file__).resolve()


def fake_accuracy(lr: float | None, evaluation: int) -> float:
    """Peaks at lr 3e-3 and grows with the evaluations; lr None (auto) is 1e-4."""
    quality = max(0.5, 0.95 - 0.12 * abs(math.log10(lr or 1e-4) - math.log10(BEST_LR)))
    return round(0.5 + (quality - 0.5) * (1 - 0.5 ** evaluation), 6)


def fake_command(config: Path) -> list[str]:
    return [sys.executable, str(SCRIPT), str(config)]


def child_alive(run: Path) -> bool:
    """Whether the stand-in that trained `run` (its pid file) still runs; a zombie waiting to be reaped has ended."""
    try:
        stat = Path(f"/proc/{int((run / 'pid').read_text())}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def main(path: str) -> int:
    import yaml

    cfg = yaml.safe_load(Path(path).read_text())
    train = cfg.get("train") or {}
    run = Path(cfg["output"])
    if train.get("batch_size") == 7:
        print("Traceback (most recent call last):\nRuntimeError: boom", file=sys.stderr)
        return 1
    if train.get("batch_size") == 13:
        print("error: train.batch_size 13: unlucky.", file=sys.stderr)
        return 2
    run.mkdir(parents=True, exist_ok=True)
    (run / "pid").write_text(str(os.getpid()))
    (run / "config.yaml").write_text(yaml.safe_dump({**cfg, "eval": {"metric": "accuracy"}}))
    delay = float(os.environ.get("FAKE_TRAINER_DELAY", "0.05"))
    lr, values = train.get("learning_rate"), []
    for k in range(1, int(train.get("epochs") or 6) + 1):
        time.sleep(delay)
        values.append(fake_accuracy(lr, k))
        with open(run / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps({"step": 10 * k, "epoch": k, "loss": 1.0 / k}) + "\n")
            fh.write(json.dumps({"step": 10 * k, "split": "validation", "accuracy": values[-1], "loss": 1 - values[-1]})
                     + "\n")
    (run / "summary.json").write_text(json.dumps({"metrics": {"validation": {"accuracy": max(values)},
                                                              "test": {"accuracy": max(values) - 0.01}}}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

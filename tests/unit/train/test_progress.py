"""metrics.jsonl: append, read, and truncate on resume."""
from __future__ import annotations

from tuneforge.train.progress import MetricsLog, make_progress


def test_metrics_log_write_read_truncate(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl")
    assert log.read() == []
    for step in (10, 20, 30):
        log.write({"step": step, "loss": 1.0 / step})
    log.write({"step": 20, "split": "validation", "accuracy": 0.5})
    assert [r["step"] for r in log.read()] == [10, 20, 30, 20]
    log.truncate_after(20)
    assert log.read() == [{"step": 10, "loss": 0.1}, {"step": 20, "loss": 0.05},
                          {"step": 20, "split": "validation", "accuracy": 0.5}]


def test_disabled_log_writes_nothing(tmp_path):
    log = MetricsLog(tmp_path / "m.jsonl", enabled=False)
    log.write({"step": 1})
    log.truncate_after(0)
    assert not (tmp_path / "m.jsonl").exists()


def test_make_progress_disabled():
    with make_progress(False) as p:
        task = p.add_task("train", total=3, info="")
        p.update(task, completed=3)
        assert p.tasks[0].completed == 3
    assert make_progress(False).disable and not make_progress(True).disable

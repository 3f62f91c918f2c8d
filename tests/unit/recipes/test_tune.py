"""`tuneforge tune` on Optuna with a stand-in trainer (tests/tune_helpers.py: a child process that writes a run
folder's records in ~0.1 s): trial 0 = the defaults, best.yaml, the report, pruning that stops a child, resume after
an interrupted search, parallel trials, failed trials. The real `tuneforge finetune` child is in the slow tests of
tests/integration/test_tune_cli.py."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import optuna
import pytest
import yaml
from optuna.trial import TrialState
from tune_helpers import child_alive, fake_accuracy, fake_command

from tuneforge.config import FinetuneConfig, load_config
from tuneforge.errors import UserError
from tuneforge.recipes.tune import TuneSettings, tune
from tuneforge.recipes.tune_trial import ValidationTail

PNG = b"\x89PNG\r\n\x1a\n"
BASE = "data: {train: train.csv}\ntrain: {learning_rate: 0.003, epochs: 6}\n"


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FAKE_TRAINER_DELAY", "0.02")
    (tmp_path / "base.yaml").write_text(BASE)
    return tmp_path


def _search(**kw):
    settings = {"config": "base.yaml", "output": "out", "poll_seconds": 0.02, **kw}
    return tune(TuneSettings(**settings), fake_command)


def _study(folder="out"):
    return optuna.load_study(study_name="out", storage=f"sqlite:///{os.path.abspath(folder)}/study.db")


def test_trial_0_is_the_defaults_and_best_yaml_is_a_ready_config(workdir):
    result = _search(flags={"lr": "1e-5:1e-1:log"}, trials=4, pruner="none")
    trials = _study().get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4 and result.counts["complete"] == 4
    assert trials[0].params == {} and trials[0].user_attrs["defaults"]
    defaults_cfg = yaml.safe_load((workdir / "out/trial-0000/trial.yaml").read_text())
    assert defaults_cfg == {**yaml.safe_load(BASE), "output": "out/trial-0000",
                            "runtime": {"progress": False, "threads": defaults_cfg["runtime"]["threads"]}}
    for t in trials[1:]:
        lr = yaml.safe_load((workdir / f"out/trial-{t.number:04d}/trial.yaml").read_text())["train"]["learning_rate"]
        assert lr == t.params["train.learning_rate"]
        assert t.value == pytest.approx(max(fake_accuracy(lr, k) for k in range(1, 7)))
    assert trials[0].value == pytest.approx(fake_accuracy(0.003, 6))  # the fake peaks at lr 3e-3: defaults win
    cfg = load_config(result.best_yaml, FinetuneConfig)
    best = max((t for t in trials), key=lambda t: t.value)
    assert cfg.train.learning_rate == best.params.get("train.learning_rate", 0.003)
    assert cfg.output == "out/best" and cfg.data.train == "train.csv"
    assert result.metric == "accuracy" and result.defaults["number"] == 0


def test_the_report_compares_best_with_defaults_and_has_the_three_plots(workdir):
    (workdir / "base.yaml").write_text(BASE.replace("0.003", "0.0001"))  # weak defaults: a trial beats them
    result = _search(flags={"lr": "1e-3:1e-2:log"}, trials=4, pruner="none")
    report = workdir / "out/report"
    for name in ("history.png", "importances.png", "parallel.png"):
        assert (report / name).read_bytes()[:8] == PNG, name
    md, html = (report / "report.md").read_text(), (report / "report.html").read_text()
    best, defaults = result.best, result.defaults
    assert best["number"] != 0 and best["value"] > defaults["value"]
    gain = f"{best['value'] - defaults['value']:+.4f}"
    assert f"with the defaults (trial 0): {gain}" in md and gain in html
    assert "| defaults | 0 | " in md and f"| best | {best['number']} | " in md
    assert "base config: train.learning_rate = 0.0001" in md  # what the defaults ran with
    assert all(f"src='{name}'" in html for name in ("history.png", "importances.png", "parallel.png"))
    rows = json.loads((report / "trials.json").read_text())
    assert [r["number"] for r in rows] == [0, 1, 2, 3] and rows[0]["test"] == {"accuracy": defaults["value"] - 0.01}


def test_pruning_stops_the_child(workdir, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_DELAY", "0.1")
    (workdir / "base.yaml").write_text(BASE.replace("epochs: 6", "epochs: 8"))
    result = _search(space=str(_space(workdir, "train.learning_rate: [1.0e-7]")), trials=3, prune_startup=1,
                     prune_warmup=0)
    trials = _study().get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.PRUNED]
    assert result.counts == {"complete": 1, "pruned": 2, "stopped": 0, "fail": 0}
    for number in (1, 2):
        folder = workdir / f"out/trial-{number:04d}"
        assert not child_alive(folder)  # stopped, not left to finish
        records = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
        assert 1 <= sum(r.get("split") == "validation" for r in records) < 8
        assert not (folder / "summary.json").exists()
        assert trials[number].intermediate_values[1] == pytest.approx(fake_accuracy(1e-7, 1))


def _space(folder, text):
    path = folder / "space.yaml"
    path.write_text(text)
    return path


def test_resume_keeps_finished_trials_and_reruns_the_interrupted_one(workdir):
    _search(flags={"lr": "1e-5:1e-1:log"}, trials=2, pruner="none")
    study = _study()
    before = [(t.number, t.state, t.value, t.params) for t in study.get_trials()]
    killed = study.ask()  # what a kill leaves: a RUNNING trial with its values drawn
    lr = killed.suggest_float("train.learning_rate", 1e-5, 1e-1, log=True)
    with pytest.raises(UserError, match="out: already holds a search. Pass --resume"):
        _search(flags={"lr": "1e-5:1e-1:log"}, trials=4)
    result = _search(flags={"lr": "1e-5:1e-1:log"}, trials=4, pruner="none", resume=True)
    trials = _study().get_trials()
    assert [(t.number, t.state, t.value, t.params) for t in trials[:2]] == before
    assert trials[2].state == TrialState.FAIL and trials[2].user_attrs["interrupted"]
    again = [t for t in trials if t.user_attrs.get("requeued_from") == 2]
    assert len(again) == 1 and again[0].params == {"train.learning_rate": lr}
    assert again[0].state == TrialState.COMPLETE
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 4 == result.counts["complete"]
    (workdir / "base.yaml").write_text(BASE.replace("epochs: 6", "epochs: 5"))
    with pytest.raises(UserError, match="the base config .* changed since the search started"):
        _search(flags={"lr": "1e-5:1e-1:log"}, trials=5, resume=True)


def test_parallel_trials_run_at_the_same_time(workdir, monkeypatch):
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two cores")
    monkeypatch.setenv("FAKE_TRAINER_DELAY", "0.1")
    _search(flags={"lr": "1e-4:1e-2:log"}, trials=2, parallel=2, pruner="none")
    a, b = _study().get_trials()
    assert a.datetime_start < b.datetime_complete and b.datetime_start < a.datetime_complete


def test_a_failed_trial_is_marked_and_the_search_goes_on(workdir):
    result = _search(flags={"batch_size": "7,7"}, trials=3, pruner="none")  # batch 7: the fake crashes
    states = [t.state for t in _study().get_trials()]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.FAIL]
    assert result.counts["fail"] == 2 and result.best["number"] == 0


def test_defaults_that_cannot_run_stop_the_search_in_one_line(workdir):
    (workdir / "base.yaml").write_text("data: {train: train.csv}\ntrain: {batch_size: 13, epochs: 2}\n")
    with pytest.raises(UserError, match=r"trial 0 \(defaults\) failed: train.batch_size 13: unlucky. \(see "):
        _search(flags={"lr": "1e-4:1e-2:log"}, trials=3)


def test_validation_tail_reads_whole_lines_only(tmp_path):
    (tmp_path / "config.yaml").write_text("eval: {metric: macro_f1}\n")
    tail = ValidationTail(tmp_path, None)
    with open(tmp_path / "metrics.jsonl", "w") as fh:
        fh.write('{"step": 1, "loss": 2.0}\n{"step": 1, "split": "validation", "macro_f1": 0.5}\n{"step": 2, "spl')
    assert tail.read() == [0.5] and tail.metric == "macro_f1"
    with open(tmp_path / "metrics.jsonl", "a") as fh:
        fh.write('it": "validation", "macro_f1": 0.75}\n')
    assert tail.read() == [0.75] and tail.read() == []


def test_ray_address_that_does_not_answer_is_one_line(workdir):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    with pytest.raises(UserError, match=rf"--address 127.0.0.1:{port}: no Ray cluster answers there"):
        _search(flags={"lr": "1e-4:1e-2:log"}, backend="ray", address=f"127.0.0.1:{port}")
    assert not (workdir / "out").exists()  # checked before the study was created
    with pytest.raises(UserError, match="goes with --backend ray"):
        _search(flags={"lr": "1e-4:1e-2:log"}, address=f"127.0.0.1:{port}")


TESTS = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEARCH_SCRIPT = ("import sys; sys.path.insert(0, {tests!r}); from tune_helpers import fake_command; "
                 "from tuneforge.recipes.tune import TuneSettings, tune; "
                 "tune(TuneSettings(config='base.yaml', output='out', flags={{'lr': '1e-4:1e-2:log'}}, trials=3, "
                 "pruner='none', poll_seconds=0.02, parallel=2), fake_command)")


def test_sigterm_stops_every_child_and_resume_reruns_the_cut_trials(workdir, monkeypatch):
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two cores for two trials at once")
    monkeypatch.setenv("FAKE_TRAINER_DELAY", "0.4")  # 6 evaluations: 2.4 s a trial
    proc = subprocess.Popen([sys.executable, "-c", SEARCH_SCRIPT.format(tests=TESTS)], cwd=workdir,
                            stderr=subprocess.PIPE, text=True)
    end = time.time() + 60
    while not all((workdir / f"out/trial-000{n}/metrics.jsonl").exists() for n in (0, 1)) and time.time() < end:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) != 0, proc.stderr.read()
    assert not any(child_alive(workdir / f"out/trial-000{n}") for n in (0, 1))  # the search stopped its children
    assert not list(workdir.glob("out/trial-*/summary.json"))
    cut = _study().get_trials()
    assert [t.state for t in cut] == [TrialState.FAIL] * 2 and all(t.user_attrs["interrupted"] for t in cut)
    monkeypatch.setenv("FAKE_TRAINER_DELAY", "0.02")
    _search(flags={"lr": "1e-4:1e-2:log"}, trials=3, pruner="none", resume=True)
    trials = _study().get_trials()
    again = {t.user_attrs.get("requeued_from"): t for t in trials[2:]}
    assert again[0].user_attrs["defaults"] and again[0].params == {} and again[1].params == cut[1].params
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 3


def test_a_ray_trial_stopped_early_is_shown_as_stopped_and_never_the_best(tmp_path):
    """Ray tells the study the last value of a trial its scheduler stopped, as if complete: without summary.json in
    its run folder the trial is `stopped`, and best.yaml never takes it."""
    from optuna.distributions import FloatDistribution

    from tuneforge.recipes.tune_outputs import pick, trial_rows

    study = optuna.create_study(direction="maximize")
    lr = {"train.learning_rate": FloatDistribution(1e-5, 1e-1, log=True)}
    for number, value in enumerate((0.8, 0.9, 0.95)):
        study.add_trial(optuna.trial.create_trial(value=value, params={"train.learning_rate": 10 ** -(number + 2)},
                                                  distributions=lr, intermediate_values={1: value}))
        folder = tmp_path / f"trial-{number:04d}"
        folder.mkdir()
        if number != 2:  # trial 2 was stopped: its run never finished
            (folder / "summary.json").write_text(json.dumps({"metrics": {"test": {"accuracy": value}}}))
    rows = trial_rows(study, tmp_path, ["train.learning_rate"])
    assert [r["state"] for r in rows] == ["complete", "complete", "stopped"]
    best, _ = pick(rows, "maximize")
    assert best["number"] == 1 and rows[1]["test"] == {"accuracy": 0.9}

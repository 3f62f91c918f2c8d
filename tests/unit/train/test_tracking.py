"""Experiment tracking through the session: TensorBoard event files and a local MLflow store read back after a short
run (config, loss per step, validation metrics, system metrics, summary, artifacts), a server that does not answer
or a tracker that breaks mid-run gives one warning line and the run finishes, and a resumed run continues its MLflow
run. tests/integration/test_tracking_server.py sends the same to a real `mlflow server`."""
from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import torch

from conftest import make_rows
from tuneforge.config import FinetuneConfig
from tuneforge.data.encode import encode_texts
from tuneforge.data.labels import LabelSpace
from tuneforge.errors import UserError
from tuneforge.model.build import load_classifier, load_tokenizer
from tuneforge.model.manifest import RunSummary
from tuneforge.train import tracking as tracking_mod
from tuneforge.train.objectives import make_objective
from tuneforge.train.session import Session
from tuneforge.train.tracking import Tracking, mlflow_uri, public, unreachable
from tuneforge.train.tracking_values import flat_config, summary_values, tracker_values

STEPS, EVERY = 6, 3


def run_tiny(run_dir: Path, tiny_model: Path, report_to: list[str], **tracking) -> RunSummary:
    """A six-step fine-tune of the tiny BERT through the session (evaluations at steps 0, 3 and 6), with stand-ins
    for the recipe's final/ and report/, ended by session.finish as every recipe ends."""
    cfg = FinetuneConfig.model_validate({
        "output": str(run_dir), "model": {"name": str(tiny_model)},
        "train": {"batch_size": 8, "learning_rate": 1e-3, "max_steps": STEPS, "early_stopping_patience": 0},
        "eval": {"every_steps": EVERY, "metric": "accuracy"},
        "runtime": {"device": "cpu", "precision": "fp32", "threads": 1, "progress": False, "log_every_steps": 1},
        "tracking": {"report_to": report_to, **tracking}})
    session = Session(cfg)
    cfg = session.resolve(cfg)
    rows = make_rows(48)
    labels = LabelSpace.from_labels([y for _, y in rows])
    texts, targets = [t for t, _ in rows], labels.encode([y for _, y in rows])
    encoded = encode_texts(load_tokenizer(str(tiny_model)), texts, 32, targets)
    torch.manual_seed(0)
    model = load_classifier(str(tiny_model), labels)
    scores = iter([0.5, 0.625, 0.75])
    result = session.train(model, session.text_batches(encoded, 0), make_objective("classification", multi_label=False),
                           lambda m: {"accuracy": next(scores), "confusion": [[1, 0], [0, 1]]}, metric="accuracy",
                           total_steps=STEPS, evaluate_first=True)
    (run_dir / "final").mkdir()
    (run_dir / "final" / "model.safetensors").write_bytes(b"\0" * 64)
    (run_dir / "report").mkdir()
    (run_dir / "report" / "report.md").write_text("# Tiny report\n\naccuracy **0.75**\n", encoding="utf-8")
    summary = session.summary("classification", result, {"validation": {"accuracy": 0.75, "samples": 10},
                                                        "test": {"accuracy": 0.7}})
    return session.finish(summary.model_copy(update={"report": str(run_dir / "report" / "report.md")}))


def _one_warning(err: str, *needles: str) -> str:
    lines = [ln for ln in err.splitlines() if "warning" in ln.lower() or "Traceback" in ln or "error" in ln.lower()]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _closed_port() -> int:
    with socket.socket() as s:  # bound, then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tracked(tmp_path_factory, tiny_model):
    """One run that reports to both trackers, into a local MLflow store (no $MLFLOW_TRACKING_URI)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
        runs = tmp_path_factory.mktemp("tracked")
        summary = run_tiny(runs / "run-a", tiny_model, ["tensorboard", "mlflow"])
    return {"runs": runs, "run": runs / "run-a", "summary": summary}


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(ln) for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def test_tensorboard_events_hold_loss_per_step_validation_and_config(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tracked["run"]
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0}).Reload()
    train = [r for r in _jsonl(run / "metrics.jsonl") if "split" not in r]
    assert [r["step"] for r in train] == list(range(1, STEPS + 1))
    loss = events.Scalars("train/loss")
    assert [e.step for e in loss] == [r["step"] for r in train]
    assert [e.value for e in loss] == pytest.approx([r["loss"] for r in train], rel=1e-6)
    assert [(e.step, e.value) for e in events.Scalars("validation/accuracy")] == [(0, 0.5), (3, 0.625), (6, 0.75)]
    tags = set(events.Tags()["scalars"])
    assert {"system/samples_per_s", "system/tokens_per_s", "system/rss_mb", "train/lr", "final/test/accuracy",
            "summary/tokens_per_s"} <= tags
    assert "validation/confusion" not in tags  # numbers only
    assert all(e.value > 10 for e in events.Scalars("system/rss_mb"))  # megabytes of a live Python process
    texts = {t: events.Tensors(t)[0].tensor_proto.string_val[0].decode() for t in events.Tags()["tensors"]}
    assert "learning_rate: 0.001" in texts["config/text_summary"]
    assert "Tiny report" in texts["report/text_summary"]
    hparams = list((run / "tensorboard").glob("*/hparams.yml"))  # Accelerate's store_init_configuration
    assert len(hparams) == 1 and "train.learning_rate: 0.001" in hparams[0].read_text()


def test_mlflow_local_store_holds_params_metrics_and_artifacts(tracked):
    from mlflow.tracking import MlflowClient

    run_dir, runs = tracked["run"], tracked["runs"]
    assert (runs / "mlflow.db").is_file() and not (run_dir / "mlruns").exists()  # beside the run folder
    record = json.loads((run_dir / "tracking.json").read_text())
    client = MlflowClient(f"sqlite:///{runs / 'mlflow.db'}")
    run = client.get_run(record["mlflow"]["run_id"])
    assert client.get_experiment(run.info.experiment_id).name == "tuneforge"
    assert run.info.run_name == "run-a" and run.info.status == "FINISHED"
    assert run.data.params["train.learning_rate"] == "0.001" and run.data.params["tracking.report_to"] == \
        '["tensorboard", "mlflow"]' and run.data.params["train.epochs"] == "null"
    assert run.data.tags["tuneforge.task"] == "classification"
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert sorted(m.step for m in history) == list(range(1, STEPS + 1))
    accuracy = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "validation/accuracy"))
    assert accuracy == [(0, 0.5), (3, 0.625), (6, 0.75)]
    assert {"system/rss_mb", "system/samples_per_s", "system/tokens_per_s"} <= set(run.data.metrics)
    assert run.data.metrics["final/test/accuracy"] == 0.7 and run.data.metrics["summary/steps"] == STEPS
    root = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "metrics.jsonl", "summary.json", "report", "final"} <= root
    assert [a.path for a in client.list_artifacts(run.info.run_id, "report")] == ["report/report.md"]
    assert [a.path for a in client.list_artifacts(run.info.run_id, "final")] == ["final/model.safetensors"]
    assert (runs / "mlartifacts").is_dir()  # the local store's artifacts, beside it too


def test_resume_continues_the_same_mlflow_run(tracked, monkeypatch):
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run_dir = tracked["run"]
    first = json.loads((run_dir / "tracking.json").read_text())["mlflow"]["run_id"]
    cfg = FinetuneConfig.model_validate(
        {"output": str(run_dir), "tracking": {"report_to": ["mlflow"]}})

    class _Accelerator:
        trackers: list = []

    tracking = Tracking(cfg.tracking, run_dir, True, print)
    tracking.start(cfg, _Accelerator(), resume=True)
    assert mlflow.active_run().info.run_id == first
    tracking.record({"step": STEPS + 1, "loss": 0.25})
    tracking.finish(tracked["summary"].model_copy(update={"steps": STEPS + 1, "report": None}))
    assert mlflow.active_run() is None
    history = mlflow.tracking.MlflowClient().get_metric_history(first, "train/loss")
    assert max(m.step for m in history) == STEPS + 1


def test_unreachable_server_warns_once_and_the_run_finishes(tmp_path, tiny_model, monkeypatch, capsys):
    for proxy in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{_closed_port()}")
    summary = run_tiny(tmp_path / "run", tiny_model, ["mlflow"])
    assert summary.steps == STEPS and (tmp_path / "run" / "summary.json").is_file()
    _one_warning(capsys.readouterr().err, "MLflow server at http://127.0.0.1:", "does not answer",
                 "goes on without MLflow")
    assert "does not answer" in json.loads((tmp_path / "run" / "tracking.json").read_text())["dropped"]["mlflow"]


def test_a_tracker_that_breaks_mid_run_is_dropped_after_one_warning(tmp_path, tiny_model, monkeypatch, capsys):
    from accelerate.tracking import TensorBoardTracker

    calls = []

    def broken(self, values, step=None, **kwargs):
        calls.append(step)
        if step and step >= 2:
            raise OSError("No space left on device")

    monkeypatch.setattr(TensorBoardTracker, "log", broken)
    summary = run_tiny(tmp_path / "run", tiny_model, ["tensorboard"])
    assert summary.steps == STEPS and (tmp_path / "run" / "summary.json").is_file()
    assert max(calls) == 2  # never called again after it failed
    _one_warning(capsys.readouterr().err, "tensorboard failed while logging metrics", "No space left on device")


def test_report_to_none_opens_nothing(tmp_path):
    cfg = FinetuneConfig.model_validate({"output": str(tmp_path / "run"), "tracking": {"report_to": "none"}})
    tracking = Tracking(cfg.tracking, tmp_path / "run", True, print)
    tracking.start(cfg, accelerator=None)
    tracking.record({"step": 1, "loss": 1.0})
    assert tracking.trackers == [] and not (tmp_path / "run").exists()


def test_a_missing_tracker_package_is_a_user_error(tmp_path, monkeypatch):
    real = tracking_mod.importlib.util.find_spec
    monkeypatch.setattr(tracking_mod.importlib.util, "find_spec", lambda n: None if n == "mlflow" else real(n))
    cfg = FinetuneConfig.model_validate({"tracking": {"report_to": ["tensorboard", "mlflow"]}})
    with pytest.raises(UserError, match=r"tracking.report_to: mlflow is not installed; `pip install mlflow`"):
        Tracking(cfg.tracking, tmp_path, True, print)


def test_record_and_summary_names():
    train = tracker_values({"step": 5, "epoch": 0.5, "loss": 0.7, "lr": 1e-4, "samples_per_s": 12.5,
                            "tokens_per_s": 300.0, "tokens": 640, "mfu": 0.1})
    assert {k: v for k, v in train.items() if k != "system/rss_mb"} == {
        "train/epoch": 0.5, "train/loss": 0.7, "train/lr": 1e-4, "system/samples_per_s": 12.5,
        "system/tokens_per_s": 300.0, "train/tokens": 640, "system/mfu": 0.1}
    assert train["system/rss_mb"] > 0
    assert tracker_values({"step": 9, "split": "validation", "accuracy": 0.9, "per_class": {"a": 1}, "ok": True,
                           "train_seconds": 3.5}) == {"validation/accuracy": 0.9, "validation/train_seconds": 3.5}
    summary = RunSummary(task="mlm", run_dir="r", final="r/final", metrics={"loss": 2.0, "perplexity": 7.4},
                         steps=10, tokens_per_s=99.0, mfu=None)
    values = summary_values(summary)
    assert values["final/loss"] == 2.0 and values["final/perplexity"] == 7.4 and values["summary/steps"] == 10
    assert "summary/mfu" not in values


def test_flat_config_and_local_uri(tmp_path, monkeypatch):
    cfg = FinetuneConfig.model_validate({"lora": {"target_modules": ["q_proj", "v_proj"]}})
    flat = flat_config(cfg)
    assert flat["train.weight_decay"] == 0.01 and flat["lora.target_modules"] == '["q_proj", "v_proj"]'
    assert flat["train.epochs"] == "null" and flat["runtime.progress"] is True
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert mlflow_uri(tmp_path / "runs" / "a") == (f"sqlite:///{(tmp_path / 'runs' / 'mlflow.db').as_posix()}", True)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracker:5000")
    assert mlflow_uri(tmp_path / "runs" / "a") == ("http://tracker:5000", False)


def test_a_resumed_run_hides_what_tensorboard_got_after_the_last_checkpoint(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from tuneforge.train.checkpoint import STATE_FILE

    run_dir = tmp_path / "run"
    cfg = FinetuneConfig.model_validate({"output": str(run_dir), "tracking": {"report_to": ["tensorboard"]}})
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("output: run\n")

    class _Accelerator:
        trackers: list = []

    for resume, steps, loss in ((False, range(1, 7), 1.0), (True, range(4, 6), 2.0)):
        if resume:  # the interrupted run had a complete checkpoint at step 3
            (run_dir / "checkpoints" / "step-3").mkdir(parents=True)
            (run_dir / "checkpoints" / "step-3" / STATE_FILE).write_text("{}")
        tracking = Tracking(cfg.tracking, run_dir, True, print)
        tracking.start(cfg, _Accelerator(), resume=resume)
        for step in steps:
            tracking.record({"step": step, "loss": loss})
        for tracker in list(tracking.trackers):
            tracker.finish()
    events = EventAccumulator(str(run_dir / "tensorboard")).Reload()
    loss = [(e.step, e.value) for e in events.Scalars("train/loss")]
    assert loss == [(1, 1.0), (2, 1.0), (3, 1.0), (4, 2.0), (5, 2.0)]  # step 6 and the first 4, 5 hidden


def test_probe_and_messages(monkeypatch):
    for proxy in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(proxy, raising=False)
    closed = f"http://127.0.0.1:{_closed_port()}"
    assert "refused" in unreachable(closed).lower()
    assert unreachable("sqlite:///x.db") is None and unreachable("databricks") is None  # not probed
    monkeypatch.setenv("http_proxy", "http://proxy.internal:3128")
    assert unreachable(closed.replace("127.0.0.1", "mlflow.internal")) is None  # through a proxy: MLflow decides
    assert public("https://user:secret@mlflow.internal:5000/prefix") == "https://mlflow.internal:5000/prefix"

"""Experiment tracking for a run (`tracking.report_to`): Accelerate's TensorBoard and MLflow trackers get the resolved
config, every metrics.jsonl record and, at the end, the summary, the report and final/ (MLflow artifacts).

The trackers are Accelerate's own classes, but started and called one by one (not through `init_trackers` and
`Accelerator.log`, which stop at the first tracker that raises): a tracker that fails — an MLflow server that does not
answer, a full disk — is reported in one warning line and left out, and training goes on. Main process only.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import socket
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from tuneforge.errors import UserError
from tuneforge.logs import quieted
from tuneforge.model.artifact import atomic_write_text
from tuneforge.train.checkpoint import latest_checkpoint
from tuneforge.train.tracking_values import flat_config, summary_values, tracker_values

PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow"}
LOCAL_STORE, LOCAL_ARTIFACTS = "mlflow.db", "mlartifacts"  # beside the run folder: runs side by side share them
RECORD = "tracking.json"  # in the run folder: where this run's tracking went (a resumed run continues it)
RUN_FILES = ("config.yaml", "metrics.jsonl", "summary.json")
# A server that stops answering mid-run costs at most ~3 tries of the timeout once, not MLflow's default of 7
# retries with minutes of back-off on every call. The user's own settings win.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


def check_trackers(report_to: list[str]) -> None:
    """A tracker whose package is missing is a user error before any work."""
    for name in report_to:
        if importlib.util.find_spec(PACKAGES[name]) is None:
            raise UserError(f"tracking.report_to: {name} is not installed; `pip install {PACKAGES[name]}` "
                            "or drop it from --report-to.")


def mlflow_uri(run_dir: Path) -> tuple[str, bool]:
    """(tracking URI, local): $MLFLOW_TRACKING_URI when set, else a SQLite store beside the run folder (MLflow's own
    default, sqlite:///mlflow.db, anchored there instead of the working directory)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if uri:
        return uri, False
    return f"sqlite:///{(Path(run_dir).resolve().parent / LOCAL_STORE).as_posix()}", True


def unreachable(uri: str, timeout: float = 5.0) -> str | None:
    """Why an http(s) tracking server cannot be reached (no TCP connection within `timeout`), or None. Other URIs
    (a database, a file store) are not probed: opening them says it."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return None
    if urllib.request.getproxies().get(parts.scheme) and not urllib.request.proxy_bypass(parts.hostname or ""):
        return None  # reached through a proxy: MLflow's own (bounded) requests tell
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        with socket.create_connection((parts.hostname or "", port), timeout=timeout):
            return None
    except (OSError, ValueError) as exc:
        return _short(exc)


def public(uri: str) -> str:
    """The URI without user:password, for messages."""
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https") and parts.hostname:
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"
    return uri


class Tracking:
    """The trackers of one run. `record` takes every metrics.jsonl record; `start` and `finish` bracket the run."""

    def __init__(self, cfg, run_dir: Path, enabled: bool, say):
        self.cfg, self.run_dir, self.enabled, self.say = cfg, Path(run_dir), enabled and bool(cfg.report_to), say
        self.trackers: list = []
        self.accelerator = None
        self.info: dict = {}
        self.store_lock: Path | None = None  # a local MLflow store is created under this lock
        if self.enabled:
            check_trackers(cfg.report_to)

    def start(self, run_cfg, accelerator, resume: bool = False) -> None:
        """Open each tracker and log the resolved config (once per run; a later call does nothing)."""
        if not self.enabled or self.accelerator is not None:
            return
        self.accelerator = accelerator
        previous = _read_json(self.run_dir / RECORD) if resume else {}
        for name in self.cfg.report_to:
            tracker = self._open_tensorboard(resume) if name == "tensorboard" else self._open_mlflow(previous)
            if tracker is not None and self._call(tracker, "starting", _locked_start, tracker, self.store_lock):
                self.trackers.append(tracker)
                accelerator.trackers.append(tracker)  # so accelerator.get_tracker(name) finds it
                if name == "mlflow":
                    self._tag_mlflow(tracker, run_cfg)
        values = flat_config(run_cfg)
        for tracker in list(self.trackers):
            params = self._new_params(tracker, values)
            self._call(tracker, "logging the config", tracker.store_init_configuration, params)
            if tracker.name == "tensorboard":
                yaml_text = (self.run_dir / "config.yaml").read_text(encoding="utf-8")
                self._call(tracker, "logging the config", tracker.log, {"config": f"```yaml\n{yaml_text}```"}, 0)
            elif tracker.name == "mlflow":
                self._call(tracker, "uploading config.yaml", tracker.log_artifact, str(self.run_dir / "config.yaml"))
        self._write_record()

    def _new_params(self, tracker, values: dict) -> dict:
        """MLflow params cannot change: a resumed run logs only the keys it has not logged yet (a changed value is in
        the config.yaml artifact, uploaded again)."""
        if tracker.name != "mlflow" or not getattr(tracker, "run_id", None):
            return values
        import mlflow

        logged = mlflow.get_run(tracker.active_run.info.run_id).data.params
        return {k: v for k, v in values.items() if k not in logged}

    def _tag_mlflow(self, tracker, run_cfg) -> None:
        """Run tags (on the run, not the experiment, where Accelerate's `tags` would also go) and the run id."""
        import mlflow

        self.info["mlflow"]["run_id"] = tracker.active_run.info.run_id
        task = getattr(run_cfg, "task", None) or getattr(run_cfg, "objective", "")
        self._call(tracker, "tagging the run", mlflow.set_tags,
                   {"tuneforge.task": str(task), "tuneforge.run_dir": str(self.run_dir.resolve())})
        self._call(tracker, "tagging the experiment", _training_experiment, tracker.active_run.info.experiment_id)

    def _open_tensorboard(self, resume: bool):
        """Event files in <run>/tensorboard. Resumed: what the interrupted run logged after its last checkpoint is
        hidden (SummaryWriter's purge_step), as the loop logs those steps again."""
        from accelerate.tracking import TensorBoardTracker

        self.info["tensorboard"] = str(self.run_dir / "tensorboard")
        checkpoint = latest_checkpoint(self.run_dir) if resume else None
        purge = {"purge_step": int(checkpoint.name.rpartition("-")[2]) + 1} if checkpoint else {}
        return TensorBoardTracker("tensorboard", self.run_dir, **purge)

    def _open_mlflow(self, previous: dict):
        import mlflow
        from accelerate.tracking import MLflowTracker

        uri, local = mlflow_uri(self.run_dir)
        why = unreachable(uri)
        if why:
            self.say(f"warning: tracking: the MLflow server at {public(uri)} does not answer ({why}); "
                     "the run goes on without MLflow.")
            self.info.setdefault("dropped", {})["mlflow"] = f"{public(uri)} does not answer: {why}"
            return None
        if uri.startswith(("http://", "https://")):
            for key, value in HTTP_DEFAULTS.items():
                os.environ.setdefault(key, value)
        for noisy in ("mlflow.store.db.utils", "alembic"):  # "Creating initial MLflow database tables..."
            logging.getLogger(noisy).setLevel(logging.WARNING)
        mlflow.set_tracking_uri(uri)  # also when it came from the environment: an earlier run may have set another
        old = previous.get("mlflow", {})
        run_id = old.get("run_id") if old.get("tracking_uri") == public(uri) else None
        name = self.cfg.run_name or self.run_dir.resolve().name
        artifacts = (self.run_dir.resolve().parent / LOCAL_ARTIFACTS).as_uri() if local else None
        self.info["mlflow"] = {"tracking_uri": public(uri), "experiment": self.cfg.project, "run_name": name}
        self.store_lock = self.run_dir.resolve().parent / f"{LOCAL_STORE}.lock" if local else None
        return MLflowTracker(experiment_name=self.cfg.project, logging_dir=artifacts, run_id=run_id, run_name=name)

    def record(self, record: dict) -> None:
        """One metrics.jsonl record to every tracker, at its step."""
        if not self.trackers:
            return
        values, step = tracker_values(record), int(record.get("step", 0))
        for tracker in list(self.trackers):
            self._call(tracker, "logging metrics", tracker.log, values, step)

    def finish(self, summary) -> None:
        """The summary's numbers, the report (TensorBoard: report.md as text) and the artifacts (MLflow); then close."""
        if not self.trackers:
            return
        values, step = summary_values(summary), int(summary.steps)
        report = _report_folder(summary, self.run_dir)
        for tracker in list(self.trackers):
            self._call(tracker, "logging the summary", tracker.log, values, step)
            if tracker.name == "tensorboard" and report and (report / "report.md").is_file():
                text = (report / "report.md").read_text(encoding="utf-8")
                self._call(tracker, "logging the report", tracker.log, {"report": text}, step)
            elif tracker.name == "mlflow":
                self._upload(tracker, report)
        for tracker in list(self.trackers):
            self._call(tracker, "closing", tracker.finish)
            self._drop(tracker)

    def _upload(self, tracker, report: Path | None) -> None:
        for name in RUN_FILES:
            if (self.run_dir / name).is_file():
                self._call(tracker, f"uploading {name}", tracker.log_artifact, str(self.run_dir / name))
        if report is not None:
            self._call(tracker, "uploading the report", tracker.log_artifacts, str(report), "report")
        final = self.run_dir / "final"
        if self.cfg.log_model and final.is_dir():
            self._call(tracker, "uploading final/", tracker.log_artifacts, str(final), "final")

    def _call(self, tracker, doing: str, fn, *args) -> bool:
        """Run one tracker call; on any error warn once (this tracker is then left out) and return False."""
        if tracker not in self.trackers and doing != "starting":
            return False
        try:
            with quieted("urllib3"):  # a line per HTTP retry; the one warning line is ours
                fn(*args)
            return True
        except Exception as exc:  # noqa: BLE001 — tracking must never stop training, whatever the backend raises
            self.say(f"warning: tracking: {tracker.name} failed while {doing} ({_short(exc)}); "
                     f"the run goes on without {tracker.name}.")
            self._drop(tracker, close=doing != "starting")
            self.info.setdefault("dropped", {})[tracker.name] = f"{doing}: {_short(exc)}"
            self._write_record()
            return False

    def _drop(self, tracker, close: bool = False) -> None:
        """Leave a tracker out; `close`: end its run first where that still works (MLflow: not left RUNNING)."""
        for trackers in (self.trackers, getattr(self.accelerator, "trackers", [])):
            if tracker in trackers:
                trackers.remove(tracker)
        if close:
            with contextlib.suppress(Exception), quieted("urllib3"):
                tracker.finish()

    def _write_record(self) -> None:
        if self.info:
            atomic_write_text(self.run_dir / RECORD, json.dumps(self.info, indent=2) + "\n")


def _training_experiment(experiment_id: str) -> None:
    """Mark a new experiment as model training, so the MLflow UI (3.x) opens it on its runs and charts instead of
    the GenAI overview it shows an experiment of no kind."""
    import mlflow

    client = mlflow.MlflowClient()
    if "mlflow.experimentKind" not in client.get_experiment(experiment_id).tags:
        client.set_experiment_tag(experiment_id, "mlflow.experimentKind", "custom_model_development")


def _locked_start(tracker, lock: Path | None) -> None:
    """Start a tracker; with `lock` (a local SQLite store), one process at a time, so runs that start together
    (parallel tuning trials beside each other) do not race to create the store's tables or the experiment."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        lock = None
    if lock is None:
        tracker.start()
        return
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            tracker.start()
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _report_folder(summary, run_dir: Path) -> Path | None:
    if summary.report:
        path = Path(summary.report)
        return path if path.is_dir() else path.parent
    return run_dir / "report" if (run_dir / "report").is_dir() else None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."

"""`--report-to mlflow` against a real `mlflow server` (SQLite backend, loopback, artifacts proxied by the server):
a fine-tune and a pretraining run arrive with their params, metrics per step and artifacts."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tfi_helpers import FAST, assert_ok, run_cli, write_toy_data

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_health(url: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {proc.returncode}: {proc.stdout.read()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"mlflow server at {url} did not answer within {timeout:.0f} s")


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """`mlflow server` on 127.0.0.1 with a SQLite store and its own artifact folder, in a temp folder."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    exe = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or shutil.which("mlflow")
    cmd = [exe, "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination",
           str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env={**os.environ, "OMP_NUM_THREADS": "1",
                                                 "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})  # no job workers
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_health(url, proc)
        yield {"url": url, "root": root}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server's own process group: it and its workers
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        proc.stdout.close()


def _run(client, name: str):
    runs = client.search_runs([client.get_experiment_by_name("tuneforge").experiment_id],
                              filter_string=f"attributes.run_name = '{name}'")
    assert len(runs) == 1, runs
    return runs[0]


def _artifacts(client, run_id: str, path: str | None = None) -> set[str]:
    out = set()
    for item in client.list_artifacts(run_id, path):
        out |= _artifacts(client, run_id, item.path) if item.is_dir else {item.path}
    return out


# The same logic against a local store, in seconds: tests/unit/train/test_tracking.py::
# test_mlflow_local_store_holds_params_metrics_and_artifacts
# (and ::test_unreachable_server_warns_once_and_the_run_finishes).
def test_finetune_and_pretrain_runs_arrive_at_a_real_server(mlflow_server, tmp_path, tiny_model):
    from mlflow.tracking import MlflowClient

    url = mlflow_server["url"]
    data = write_toy_data(tmp_path)
    proc = run_cli(["finetune", "--train", data["train"], "--validation", data["validation"], "--test", data["test"],
                    "--model", tiny_model, "--output", "runs/clf", "--report-to", "mlflow", "--set", "train.epochs=2",
                    "--set", "eval.baseline=false", "--set", "runtime.log_every_steps=2", *FAST[2:]],
                   cwd=tmp_path, MLFLOW_TRACKING_URI=url)
    assert_ok(proc)
    assert "warning: tracking" not in proc.stderr
    (tmp_path / "corpus.txt").write_text("\n".join(f"the movie was really good number {i} ." for i in range(200)))
    proc = run_cli(["pretrain", "--corpus", "corpus.txt", "--preset", "tiny", "--output", "runs/mlm",
                    "--report-to", "mlflow", "--set", "tokenizer.vocab_size=200", "--set", "data.block_size=32",
                    "--set", "train.max_steps=8", "--set", "train.batch_size=8", "--set", "eval.every_steps=4",
                    "--set", "runtime.log_every_steps=1", *FAST[6:]], cwd=tmp_path, MLFLOW_TRACKING_URI=url)
    assert_ok(proc)
    assert not (tmp_path / "runs" / "mlflow.db").exists()  # the server got it, not a local store

    client = MlflowClient(url)
    clf, mlm = _run(client, "clf"), _run(client, "mlm")
    record = json.loads((tmp_path / "runs" / "clf" / "tracking.json").read_text())
    assert record["mlflow"] == {"tracking_uri": url, "experiment": "tuneforge", "run_name": "clf",
                                "run_id": clf.info.run_id}
    assert clf.info.status == mlm.info.status == "FINISHED"
    assert clf.data.params["model.name"] == str(tiny_model) and clf.data.params["train.epochs"] == "2.0"
    assert clf.data.tags["tuneforge.task"] == "classification" and mlm.data.tags["tuneforge.task"] == "mlm"
    lines = [json.loads(ln) for ln in (tmp_path / "runs" / "clf" / "metrics.jsonl").read_text().splitlines()]
    train_steps = [r["step"] for r in lines if "split" not in r]
    assert sorted(m.step for m in client.get_metric_history(clf.info.run_id, "train/loss")) == train_steps
    eval_steps = [r["step"] for r in lines if r.get("split") == "validation"]
    assert sorted(m.step for m in client.get_metric_history(clf.info.run_id, "validation/accuracy")) == eval_steps
    expected = {"system/samples_per_s", "system/tokens_per_s", "system/rss_mb", "final/test/accuracy"}
    assert expected <= set(clf.data.metrics)
    assert [m.step for m in client.get_metric_history(mlm.info.run_id, "validation/perplexity")] == [0, 4, 8]
    assert "final/perplexity" in mlm.data.metrics and "system/mfu" in mlm.data.metrics
    arts = _artifacts(client, clf.info.run_id)
    assert {"config.yaml", "metrics.jsonl", "summary.json", "report/report.html", "report/report.md",
            "final/model.safetensors", "final/tuneforge.json", "final/tokenizer.json"} <= arts
    got = Path(client.download_artifacts(clf.info.run_id, "config.yaml", str(tmp_path)))
    assert got.read_text() == (tmp_path / "runs" / "clf" / "config.yaml").read_text()
    assert "final/model.safetensors" in _artifacts(client, mlm.info.run_id)
    stored = list((mlflow_server["root"] / "artifacts").rglob("model.safetensors"))
    assert len(stored) == 2  # uploaded through the server into its artifact store

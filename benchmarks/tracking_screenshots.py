"""Evidence for experiment tracking: two fine-tunes with `--report-to tensorboard,mlflow`, then TensorBoard and the
MLflow UI on loopback, each screenshotted in headless Chromium with both runs side by side.

Usage:  python -m benchmarks.tracking_screenshots [--rows 1000] [--epochs 2] [--lrs 5e-5,2e-4] [--work DIR]
                                                  [--out-dir docs/images] [--smoke]

The runs fine-tune minilm-l6 on a seeded SST-2 subset (../shared/data/sst2), one per learning rate, into
WORK/runs/lr-<lr>; their MLflow runs go to the local store WORK/runs/mlflow.db (no $MLFLOW_TRACKING_URI). Then
`tensorboard --logdir WORK/runs` and `mlflow ui --backend-store-uri sqlite:///WORK/runs/mlflow.db` start on free
loopback ports; a page is captured (DevTools Page.captureScreenshot) once its text names both runs and the charts
had a few seconds to draw. Writes OUT_DIR/tracking_tensorboard.png and OUT_DIR/tracking_mlflow.png.
`--smoke`: 200 rows, 6 steps, PNGs into WORK (a plumbing check, not the evidence).
Chromium and DevTools helpers: benchmarks/screenshot.py.
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchmarks.common import OFFLINE_ENV, ROOT, free_port, prepare_sst2
from benchmarks.screenshot import _evaluate, connect, devtools_page, find_chromium, png_size

WIDTH, HEIGHT = 1400, 900
SETTLE_S = 4.0  # after the runs' names are on the page: charts animate in
# TensorBoard's Time Series page: the loss and accuracy cards of the two runs (not the timestamped hparams folders
# Accelerate writes beside them), without the settings pane. Typed into its filter boxes: the page has no URL for it.
TYPE_JS = """const type = (placeholder, value) => {
    const box = document.querySelector(`input[placeholder="${placeholder}"]`);
    if (!box) return;
    Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value").set.call(box, value);  // React sees it too
    box.dispatchEvent(new Event("input", {bubbles: true}));
    box.dispatchEvent(new KeyboardEvent("keyup", {bubbles: true, key: "Enter"}));  // TensorBoard's run filter
  };
  const click = (label) => { const b = document.querySelector(`button[aria-label="${label}"]`); if (b) b.click(); };"""
TENSORBOARD_VIEW = """(() => {
  %s
  type("Filter tags (regex)", "^(train/loss|validation/accuracy)$");
  type("Filter runs (regex)", "tensorboard$");
  click("Close side pane");
  return true;
})()""" % TYPE_JS
# The MLflow UI's run charts: the same two metrics, without the assistant pane.
MLFLOW_VIEW = """(() => {
  %s
  type("Search metric charts", "^(train/loss|validation/accuracy)$");
  click("Close");
  return true;
})()""" % TYPE_JS


def train_runs(work: Path, args) -> list[str]:
    """One fine-tune per learning rate (subprocesses, as a user runs them); returns the run names."""
    train, dev = prepare_sst2(args.rows, 13, work / "data")
    names = []
    for lr in args.lrs.split(","):
        name = f"lr-{lr}"
        cmd = [sys.executable, "-m", "tuneforge", "finetune", "--train", str(train), "--validation", str(dev),
               "--text-column", "text,sentence", "--model", args.model, "--output", str(work / "runs" / name),
               "--overwrite", "--report-to", "tensorboard,mlflow", "--set", f"train.learning_rate={lr}",
               "--set", f"train.epochs={args.epochs}", "--set", "runtime.progress=false",
               "--set", "eval.baseline=false", "--set", "runtime.log_every_steps=5", "--set", "eval.every_steps=20"]
        cmd += ["--set", "train.max_steps=6", "--set", "eval.every_steps=3"] if args.smoke else []
        cmd += ["--set", f"runtime.threads={args.threads}"] if args.threads else []
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}  # the local store, on purpose
        print(f"training {name} ...", flush=True)
        proc = subprocess.run(cmd, cwd=ROOT, env={**env, **OFFLINE_ENV}, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"error: {name} failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
        names.append(name)
    return names


@contextlib.contextmanager
def server(cmd: list[str], url: str, log: Path, timeout: float = 300):
    """A UI server process, ready when `url` answers; stopped (its process group) on exit."""
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=log.parent, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})  # no job workers
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                sys.exit(f"error: {cmd[0]} exited with {proc.returncode}; see {log}")
            try:
                with urllib.request.urlopen(url, timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit(f"error: {url} did not answer within {timeout:.0f} s; see {log}")
                time.sleep(0.5)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(10)


def _send(ws, n: int, method: str, params: dict) -> dict:
    ws.send(json.dumps({"id": n, "method": method, "params": params}))
    while (reply := json.loads(ws.recv())).get("id") != n:  # skip events
        pass
    return reply.get("result", {})


def capture(chromium: str, url: str, needles: list[str], out: Path, prepare: str = "", timeout: float = 120) -> None:
    """Open `url`, wait until the page text holds every needle, run the `prepare` script (filters), let the charts
    draw, save a PNG of the WIDTH×HEIGHT viewport."""
    check = "(() => { const t = document.body ? document.body.innerText : ''; return %s; })()" % \
        " && ".join(f"t.includes({json.dumps(n)})" for n in needles)
    with tempfile.TemporaryDirectory(prefix="tf-track-shot-") as profile, \
            devtools_page(chromium, url, profile, WIDTH, HEIGHT, timeout) as ws_url:
        ws = connect(ws_url, timeout)
        try:
            _send(ws, 1, "Emulation.setDeviceMetricsOverride",
                  {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False})
            deadline, n = time.monotonic() + timeout, 1
            while not _evaluate(ws, check, n := n + 1):
                if time.monotonic() > deadline:
                    text = _evaluate(ws, "document.body ? document.body.innerText.slice(0, 400) : ''", n := n + 1)
                    sys.exit(f"error: {url} never showed {needles} in {timeout:.0f} s (page text: {text!r})")
                time.sleep(0.5)
            if prepare:
                _evaluate(ws, prepare, n := n + 1)
            time.sleep(SETTLE_S)
            shot = _send(ws, n + 1, "Page.captureScreenshot", {"format": "png"})
        finally:
            ws.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(base64.b64decode(shot["data"]))
    print(f"wrote {out} ({'×'.join(map(str, png_size(out)))} px) from {url}")


def experiment_id(store: str, name: str = "tuneforge") -> str:
    from mlflow.tracking import MlflowClient

    return MlflowClient(store).get_experiment_by_name(name).experiment_id


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1000, help="SST-2 training rows (seeded subset; default 1000)")
    ap.add_argument("--epochs", type=float, default=2, help="epochs per run (default 2)")
    ap.add_argument("--lrs", default="5e-5,2e-4", help="one run per learning rate (default 5e-5,2e-4)")
    ap.add_argument("--model", default="minilm-l6", help="model to fine-tune (default minilm-l6)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads per run (default: all cores)")
    ap.add_argument("--work", type=Path, default=None, help="work folder (default: a new temp folder)")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "docs" / "images", help="where the PNGs go")
    ap.add_argument("--smoke", action="store_true", help="tiny runs, PNGs into the work folder")
    ap.add_argument("--reuse", action="store_true", help="no training: screenshot the runs already in --work")
    args = ap.parse_args()
    if args.smoke:
        args.rows = 200
    chromium = find_chromium()
    here = str(Path(sys.executable).parent)  # the venv's own tools first
    tools = {t: shutil.which(t, path=here) or shutil.which(t) for t in ("tensorboard", "mlflow")}
    missing = [t for t, path in (("chromium", chromium), *tools.items()) if path is None]
    if missing:
        sys.exit(f"error: not found on PATH: {', '.join(missing)}")
    work = (args.work or Path(tempfile.mkdtemp(prefix="tf-tracking-"))).resolve()
    out_dir = work if args.smoke else args.out_dir
    if args.reuse:
        names = sorted(p.parent.name for p in (work / "runs").glob("*/tracking.json"))
    else:
        names = train_runs(work, args)
    runs = work / "runs"
    store = f"sqlite:///{runs / 'mlflow.db'}"
    tb_port, ml_port = free_port(), free_port()
    tb_cmd = [tools["tensorboard"], "--logdir", str(runs), "--host", "127.0.0.1", "--port", str(tb_port)]
    with server(tb_cmd, f"http://127.0.0.1:{tb_port}/", work / "tensorboard.log") as url:
        capture(chromium, f"{url}#timeseries", names, out_dir / "tracking_tensorboard.png", TENSORBOARD_VIEW)
    ml_cmd = [tools["mlflow"], "ui", "--backend-store-uri", store, "--host", "127.0.0.1", "--port", str(ml_port),
              "--workers", "1"]
    with server(ml_cmd, f"http://127.0.0.1:{ml_port}/health", work / "mlflow.log") as health:
        url = health.removesuffix("health")
        capture(chromium, f"{url}#/experiments/{experiment_id(store)}/runs?compareRunsMode=CHART", names,
                out_dir / "tracking_mlflow.png", MLFLOW_VIEW)
    print(f"work folder: {work}")


if __name__ == "__main__":
    main()

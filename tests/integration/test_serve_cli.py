"""`tuneforge serve`: one-line errors (in process, through the CLI's main), and as a real process: the key from the
environment, request ids in the log, SIGTERM."""
from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from serve_helpers import LABELS, build_classifier, wait_ready
from tfi_helpers import assert_user_error, cli_env, run_cli


@pytest.mark.parametrize("args, needles", [
    (["--model", "no/such/folder/here"], ["does not exist"]),
    (["--model", "{tiny}", "--max-texts", "0"], ["--max-texts must be at least 1"]),
    (["--model", "{tiny}", "--max-wait-ms", "-1"], ["--max-wait-ms"]),
    (["--model", "{tiny}", "--log-level", "loud"], ["--log-level loud"]),
    (["--model", "{tiny}", "--forward-batch-size", "0"], ["--forward-batch-size must be at least 1"]),
    (["--model", "{tiny}", "--spinning", "fast"], ["--spinning fast", "call, always, off"]),
    (["--model", "{tiny}", "--spinning", "Always"], ["ONNX Runtime setting"]),  # a PyTorch folder; case-insensitive
    (["--model", "{causal}", "--precision", "int8"], ["fp32 or bf16"]),
    (["--model", "{causal}", "--spinning", "off"], ["ONNX Runtime setting", "causal LM"]),
    (["--model", "{causal}", "--max-tokens", "0"], ["--max-tokens must be at least 1"]),
])
def test_mistakes_are_one_line_errors(tmp_path, tiny_model, tiny_causal_dir, args, needles):
    args = [a.replace("{tiny}", str(tiny_model)).replace("{causal}", str(tiny_causal_dir)) for a in args]
    assert_user_error(run_cli(["serve", *args, "--port", "0"], cwd=tmp_path, timeout=120), *needles)


def _post(url: str, body: dict, headers: dict) -> tuple[int, dict, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read()), dict(r.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), dict(exc.headers)


# slow: a real server process. The app (key, request ids, logging) in process: unit test_serve_app.py::test_api_key_
# protects_v1_and_metrics_only and ::test_request_id_is_echoed_or_generated_and_logged; a graceful stop under load:
# unit test_client.py::test_shutdown_drains_in_flight_requests.
@pytest.mark.slow
def test_serve_process_with_key_from_env_logs_request_ids_and_stops_on_sigterm(tmp_path, tiny_model):
    folder = build_classifier(tmp_path / "clf", tiny_model)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "tuneforge", "serve", "--model", str(folder), "--port", str(port),
                             "--threads", "1"], cwd=tmp_path, env=cli_env(TUNEFORGE_API_KEY="env-key"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, timeout=120)
        status, body, _ = _post(url + "/v1/predict", {"texts": ["a"]}, {})
        assert status == 401
        status, body, headers = _post(url + "/v1/predict", {"texts": ["great", "awful"]},
                                      {"Authorization": "Bearer env-key", "X-Request-ID": "cli-req-1"})
        assert status == 200 and headers["x-request-id"] == "cli-req-1"
        assert [p["label"] in LABELS for p in body["predictions"]] == [True, True]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    # uvicorn shuts down gracefully, then re-raises SIGTERM
    assert proc.returncode in (0, -signal.SIGTERM), out
    assert "[cli-req-1] tuneforge.serve: POST /v1/predict 200" in out
    assert "API key required" in out and "1 model thread" in out
    assert "Application shutdown complete" in out and "Traceback" not in out
    with pytest.raises(OSError):  # nothing listens any more
        urllib.request.urlopen(url + "/health", timeout=2)

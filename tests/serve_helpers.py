"""Helpers for the serving tests: a tiny classifier folder, fake predictors, and a live uvicorn server in a thread.

Importable from unit and integration tests alike: pytest puts tests/ on sys.path for the root conftest.py.
"""
from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from pathlib import Path

LABELS = ("negative", "neutral", "positive")


def build_classifier(folder: Path, encoder: Path) -> Path:
    """The tiny encoder with a seeded 3-class head (untrained) and a tuneforge.json, as a model folder."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        encoder, num_labels=3, id2label=dict(enumerate(LABELS)), label2id={n: i for i, n in enumerate(LABELS)})
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(encoder).save_pretrained(folder)
    manifest = {"format": 1, "created": "2026-01-01T00:00:00Z", "task": "classification", "labels": list(LABELS),
                "multi_label": False, "max_length": 64, "config_sha256": "c" * 64,
                "data": {"train": {"rows": 10, "sha256": "d" * 64}}}
    (folder / "tuneforge.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


class _Labels:
    def __init__(self, names):
        self.names, self.multi_label = tuple(names), False


class FakePredictor:
    """The predictor interface with injectable behaviour: records each call's batch, can block or fail."""

    def __init__(self, delay: float = 0.0, fail_with: Exception | None = None):
        self.labels, self.max_length = _Labels(["no", "yes"]), 16
        self.delay, self.fail_with, self.calls = delay, fail_with, []
        self.gate = threading.Event()
        self.gate.set()

    def predict(self, texts: list[str]) -> list[dict]:
        self.calls.append(list(texts))
        self.gate.wait(10)
        time.sleep(self.delay)
        if self.fail_with is not None:
            raise self.fail_with
        return [{"label": "yes" if "yes" in t else "no",
                 "probabilities": {"no": 0.0, "yes": 1.0} if "yes" in t else {"no": 1.0, "yes": 0.0}} for t in texts]

    def embed(self, texts: list[str], pooling: str = "mean", role: str = "query"):
        import numpy as np

        self.calls.append(list(texts))
        return np.array([[len(t), 1.0 if pooling == "cls" else 0.0] for t in texts], dtype=np.float32)


class LiveServer:
    """uvicorn serving `app` on an ephemeral loopback port, in a thread; `with LiveServer(app) as url: ...`."""

    def __init__(self, app, graceful_s: float = 10):
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=graceful_s)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self.url

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)

    def __exit__(self, *exc) -> None:
        self.stop()
        self.sock.close()


def wait_ready(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/ready", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} was not ready within {timeout} s")


def client_ready(client, timeout: float = 20):
    """A FastAPI TestClient once its app answers /ready (the model loads in the background)."""
    deadline = time.monotonic() + timeout
    while client.get("/ready").status_code != 200:
        assert time.monotonic() < deadline, "never became ready"
        time.sleep(0.02)
    return client


class FakeEvent:
    """The engine's Event shape (tuneforge.generate.engine.Event)."""

    def __init__(self, seq_id, text_delta, token_ids, finished=False, finish_reason=None):
        self.seq_id, self.text_delta, self.token_ids = seq_id, text_delta, token_ids
        self.finished, self.finish_reason = finished, finish_reason


class FakeEngine:
    """The generate.engine.Engine interface with scripted output: every sequence says WORDS, one token per step,
    then ends with finish_reason "stop" (as at an end-of-text token), or "length" after settings.max_new_tokens.
    Records what it was given (added, cancelled, steps) and the most sequences it ever held at once (max_active).
    `gate` (set) lets steps run; `step_s` slows each step; `fail_next_step` makes the next step raise it;
    `endless=True` repeats WORDS until max_new_tokens."""

    WORDS = ("Hello", ",", " world", "!", " How", " are", " you", "?")

    def __init__(self, max_batch: int = 16, step_s: float = 0.0, endless: bool = False):
        self.max_batch, self.step_s, self.endless = max_batch, step_s, endless
        self.seqs: dict[int, dict] = {}
        self.added, self.cancelled, self.steps, self.max_active = [], [], 0, 0
        self.gate, self.fail_next_step, self._next = threading.Event(), None, 0
        self.gate.set()

    @property
    def active(self) -> int:
        return len(self.seqs)

    def add(self, prompt_ids, settings) -> int:
        if "refuse" in getattr(settings, "stop", ()):
            raise ValueError("refused by the fake engine")
        seq, self._next = self._next, self._next + 1
        self.seqs[seq] = {"n": 0, "max": settings.max_new_tokens}
        self.added.append((list(prompt_ids), settings))
        self.max_active = max(self.max_active, len(self.seqs))
        return seq

    def step(self) -> list:
        assert self.gate.wait(10)
        time.sleep(self.step_s)
        if self.fail_next_step is not None:
            exc, self.fail_next_step = self.fail_next_step, None
            raise exc
        self.steps += 1
        events = []
        for seq, state in list(self.seqs.items()):
            state["n"] += 1
            n = state["n"]
            if n > len(self.WORDS) and not self.endless:  # the end-of-text token: no text
                events.append(FakeEvent(seq, "", [2], True, "stop"))
            else:
                done = n >= state["max"]
                word = self.WORDS[(n - 1) % len(self.WORDS)]
                events.append(FakeEvent(seq, word, [100 + n % 100], done, "length" if done else None))
            if events[-1].finished:
                del self.seqs[seq]
        return events

    def cancel(self, seq_id: int) -> None:
        self.cancelled.append(seq_id)
        self.seqs.pop(seq_id, None)

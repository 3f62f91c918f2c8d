"""The web page at `/` in real headless Chromium, driven over the DevTools protocol: type, click, read, screenshot.

Needs Debian's `chromium` (.ci/run installs it) and the `websocket-client` test dependency.
"""
from __future__ import annotations

import contextlib
import json
import re
import shutil
import struct
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from serve_helpers import LABELS, LiveServer, build_classifier, wait_ready

# Headless Chromium with the DevTools protocol on: this test's own helpers (benchmarks/screenshot.py keeps its own
# copy; tests and benchmarks import nothing from each other).
NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless=new", "--disable-gpu", "--no-sandbox", "--hide-scrollbars", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")


def find_chromium() -> str | None:
    """The first Chromium-family binary on PATH, or None."""
    return next((path for name in NAMES if (path := shutil.which(name))), None)


def _devtools_port(proc: subprocess.Popen, timeout: float) -> int:
    """Chromium prints 'DevTools listening on ws://127.0.0.1:PORT/...' on stderr once it is ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            raise RuntimeError(f"chromium exited with {proc.returncode}")
        match = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
        if match:
            return int(match.group(1))
    raise TimeoutError("chromium did not print its DevTools address")


@contextlib.contextmanager
def devtools_page(chromium: str, url: str, profile: str | Path, width: int, height: int, timeout: float = 60):
    """Chromium showing `url` in a `width`×`height` window; yields the page's DevTools websocket URL and stops the
    browser on exit. `profile`: an empty folder for the user data."""
    proc = subprocess.Popen([chromium, *FLAGS, "--remote-debugging-port=0", f"--user-data-dir={profile}",
                             f"--window-size={width},{height}", url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        port = _devtools_port(proc, timeout)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
            yield next(t for t in json.load(response) if t["type"] == "page")["webSocketDebuggerUrl"]
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        proc.stderr.close()


def connect(ws_url: str, timeout: float = 30):
    """A websocket to a DevTools page (needs `websocket-client`)."""
    import websocket

    # suppress_origin: Chromium refuses DevTools websockets that carry an Origin it was not told to allow
    return websocket.create_connection(ws_url, timeout=timeout, suppress_origin=True)


CHROMIUM = find_chromium()
# slow: a real browser process. The page and its assets served offline, in process: unit test_serve_app.py::
# test_page_and_docs_are_served_offline.
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (Debian: `apt-get install chromium`); "
                                                          ".ci/run installs it")]
SENTENCE = "the staff were lovely and the room was great"
KEY = "page-test-key"


class DevTools:
    """Just enough of the Chrome DevTools protocol: commands with replies, and waiting for an event."""

    def __init__(self, ws_url: str):
        self.ws = connect(ws_url)
        self.next_id, self.events = 0, []

    def send(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_event(self, method: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, event in enumerate(self.events):
                if event.get("method") == method:
                    return self.events.pop(i)
            self.events.append(json.loads(self.ws.recv()))
        raise TimeoutError(method)

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element."""
        box = self.evaluate(f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
                            ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def type_into(self, selector: str, text: str) -> None:
        self.click(selector)
        self.send("Input.insertText", text=text)  # as typing does: input events on the focused element


@pytest.fixture
def browser(tmp_path):
    with devtools_page(CHROMIUM, "about:blank", tmp_path / "profile", 900, 700) as ws_url:
        devtools = DevTools(ws_url)
        yield devtools
        devtools.ws.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_model):
    from tuneforge.serve.app import ServeSettings, create_app
    from tuneforge.serve.load import load

    folder = build_classifier(tmp_path_factory.mktemp("page") / "clf", tiny_model)
    predictor = load(str(folder))
    with LiveServer(create_app(predictor, ServeSettings(model_path=str(folder), api_key=KEY))) as url:
        wait_ready(url)
        yield url, predictor


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    return struct.unpack(">II", data[16:24])


def test_typing_a_sentence_shows_the_label_and_probability_bars(browser, served, tmp_path):
    import base64

    url, predictor = served
    browser.send("Page.enable")
    browser.send("Network.enable")
    browser.send("Page.navigate", url=url + "/")
    browser.wait_event("Page.loadEventFired")
    browser.type_into("#key", KEY)
    browser.type_into("#text", SENTENCE)
    assert browser.evaluate("document.getElementById('text').value") == SENTENCE
    browser.click("#go")
    deadline = time.monotonic() + 30
    while browser.evaluate("document.body.dataset.state") != "done":
        assert time.monotonic() < deadline, "the page never showed a result"
        time.sleep(0.05)
    assert browser.evaluate("document.getElementById('error').textContent") == ""
    label = browser.evaluate("document.getElementById('label').textContent")
    assert label in LABELS and label == predictor.predict([SENTENCE])[0]["label"]
    bars = browser.evaluate("[...document.querySelectorAll('#bars .row')].map(r => r.textContent)")
    assert len(bars) == len(LABELS) and all(re.search(r"\d+\.\d%$", b) for b in bars)
    assert browser.evaluate("document.getElementById('result').hidden") is False
    while "clf · classification" not in browser.evaluate("document.getElementById('model').textContent"):
        assert time.monotonic() < deadline, "model info never shown"  # fetched again once the key works
        time.sleep(0.05)
    shot = base64.b64decode(browser.send("Page.captureScreenshot", format="png")["data"])
    (tmp_path / "page.png").write_bytes(shot)
    width, height = _png_size((tmp_path / "page.png").read_bytes())
    assert width >= 300 and height >= 300 and len(shot) > 5000
    requested = [e["params"]["request"]["url"] for e in browser.events if e.get("method") == "Network.requestWillBeSent"]
    assert requested and all(u.startswith(url) for u in requested), requested  # nothing leaves the machine


def test_a_wrong_key_shows_an_error_not_a_result(browser, served):
    url, _ = served
    browser.send("Page.enable")
    browser.send("Page.navigate", url=url + "/")
    browser.wait_event("Page.loadEventFired")
    browser.type_into("#key", "wrong")
    browser.type_into("#text", SENTENCE)
    browser.click("#go")
    deadline = time.monotonic() + 30
    while browser.evaluate("document.body.dataset.state") != "done":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert "API key" in browser.evaluate("document.getElementById('error').textContent")
    assert browser.evaluate("document.getElementById('result').hidden") is True

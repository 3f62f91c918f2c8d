"""Headless Chromium with the DevTools protocol on, for `screenshot.py` and the web-page test
(tests/integration/test_serve_page.py): find the binary, start it, hand back the page's DevTools websocket URL.
"""
from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

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

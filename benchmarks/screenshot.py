"""Render an HTML file (e.g. a run's report.html) to a PNG with headless Chromium, sized to fit the page.

Usage:  python -m benchmarks.screenshot runs/x/report/report.html report.png [--width 1100] [--height 2400]

Without --height the page is first opened over the DevTools protocol (needs `websocket-client`) at the same width to
measure its full height, so the PNG holds the whole page and no blank tail. The PNG itself is always drawn by
`chromium --headless=new --screenshot`. If the measurement is not possible, a fixed 2400 px window is used.
The Chromium/DevTools helpers below are this script's own (tests/integration/test_serve_page.py has its own copy:
tests and benchmarks import nothing from each other).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless=new", "--disable-gpu", "--no-sandbox", "--hide-scrollbars", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")
FALLBACK_HEIGHT = 2400
MAX_HEIGHT = 16000  # a cap: a taller window makes a huge, slow PNG; longer pages are cut here
HEIGHT_JS = ("Math.max(document.documentElement.scrollHeight, document.body ? document.body.scrollHeight : 0,"
             " document.documentElement.getBoundingClientRect().height)")


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


def _evaluate(ws, expression: str, request_id: int):
    ws.send(json.dumps({"id": request_id, "method": "Runtime.evaluate",
                        "params": {"expression": expression, "returnByValue": True}}))
    while True:
        message = json.loads(ws.recv())
        if message.get("id") == request_id:  # skip events; only our reply matters
            return message.get("result", {}).get("result", {}).get("value")


def measure_height(chromium: str, url: str, width: int, timeout: float = 60) -> int:
    """The page's full document height in CSS pixels at `width`, once it and its images have loaded."""
    with tempfile.TemporaryDirectory(prefix="tf-shot-") as profile, \
            devtools_page(chromium, url, profile, width, 800, timeout) as ws_url:
        ws = connect(ws_url, timeout)
        try:
            # The tab may still show about:blank at first: wait for *our* page, loaded with its images.
            ready = (f"location.href === {json.dumps(url)} && document.readyState === 'complete' && "
                     f"[...document.images].every(i => i.complete) ? {HEIGHT_JS} : null")
            deadline, n = time.monotonic() + timeout, 0
            while (height := _evaluate(ws, ready, n := n + 1)) is None:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{url} did not finish loading in {timeout:.0f} s")
                time.sleep(0.1)
            return int(height)
        finally:
            ws.close()


def render(chromium: str, url: str, out: Path, width: int, height: int, timeout: float = 120) -> None:
    with tempfile.TemporaryDirectory(prefix="tf-shot-") as profile:
        cmd = [chromium, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={out}", f"--window-size={width},{height}",
               url]
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not out.is_file():
        sys.exit(f"error: chromium failed (exit {proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        sys.exit(f"error: {path} is not a PNG")
    return struct.unpack(">II", data[16:24])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("html", type=Path, help="HTML file to render")
    ap.add_argument("out", type=Path, help="PNG to write")
    ap.add_argument("--width", type=int, default=1100, help="window width in CSS pixels (default 1100)")
    ap.add_argument("--height", type=int, default=None,
                    help=f"window height; default: measured to fit the page (fallback {FALLBACK_HEIGHT})")
    args = ap.parse_args()
    if not args.html.is_file():
        sys.exit(f"error: {args.html}: file not found")
    chromium, url = find_chromium(), args.html.resolve().as_uri()
    if chromium is None:
        sys.exit("error: no chromium found on PATH (tried chromium, chromium-browser, google-chrome). "
                 "Install it, e.g. `apt-get install chromium`.")
    height = args.height
    if height is None:
        try:
            height = min(max(measure_height(chromium, url, args.width), 100), MAX_HEIGHT)
        except Exception as exc:  # noqa: BLE001 — any failure to measure: a fixed tall window still gives a usable picture
            print(f"could not measure the page height ({type(exc).__name__}: {exc}); using {FALLBACK_HEIGHT}",
                  file=sys.stderr)
            height = FALLBACK_HEIGHT
    args.out.parent.mkdir(parents=True, exist_ok=True)
    render(chromium, url, args.out.resolve(), args.width, height)
    w, h = png_size(args.out)
    print(f"wrote {args.out} ({w}×{h} px) from {url}")


if __name__ == "__main__":
    main()

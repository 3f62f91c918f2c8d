"""The chat page at `/` for a causal LM in real headless Chromium: type, send, read the streamed answer, keep the
conversation, stop a generation. Browser helpers from test_serve_page.py (Debian's `chromium`, `websocket-client`)."""
from __future__ import annotations

import json
import time
import urllib.request

import pytest
from serve_helpers import LiveServer, wait_ready
from test_serve_page import CHROMIUM, DevTools, devtools_page

# slow: a real browser process. The page's markup and routes in process: unit test_openai_app.py::
# test_page_is_a_chat_box_served_offline; the SSE it reads: test_openai_app.py and test_openai_client.py.
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (Debian: `apt-get install chromium`)")]
KEY = "chat-page-key"


@pytest.fixture(scope="module")
def served(tiny_causal_dir):
    from tuneforge.recipes.serve import load_predictor
    from tuneforge.serve.app import ServeSettings, create_app

    generator, folder = load_predictor(str(tiny_causal_dir), threads=1)
    with LiveServer(create_app(generator, ServeSettings(model_path=folder, api_key=KEY))) as url:
        wait_ready(url)
        yield url


@pytest.fixture
def browser(tmp_path):
    with devtools_page(CHROMIUM, "about:blank", tmp_path / "profile", 900, 700) as ws_url:
        devtools = DevTools(ws_url)
        yield devtools
        devtools.ws.close()


def _wait_done(browser, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while browser.evaluate("document.body.dataset.state") != "done":
        assert time.monotonic() < deadline, "the page never finished"
        time.sleep(0.05)


def _server_reply(url: str, messages: list, max_tokens: int) -> str:
    body = json.dumps({"messages": messages, "max_tokens": max_tokens, "temperature": 0}).encode()
    request = urllib.request.Request(url + "/v1/chat/completions", data=body, method="POST", headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {KEY}"})
    with urllib.request.urlopen(request, timeout=30) as r:
        return json.load(r)["choices"][0]["message"]["content"]


def test_the_chat_box_streams_answers_and_keeps_the_conversation(browser, served):
    url = served
    browser.send("Page.enable")
    browser.send("Network.enable")
    browser.send("Page.navigate", url=url + "/")
    browser.wait_event("Page.loadEventFired")
    browser.type_into("#key", KEY)
    browser.evaluate("document.getElementById('temperature').value = '0';"
                     "document.getElementById('max-tokens').value = '12'")
    turns = []
    for text in ("hello world! how are you?", "this phone is slow"):
        browser.type_into("#text", text)
        browser.click("#send")
        _wait_done(browser)
        assert browser.evaluate("document.getElementById('error').textContent") == ""
        answer = browser.evaluate("[...document.querySelectorAll('#log .assistant')].pop().textContent")
        assert answer  # streamed into the bubble
        turns += [{"role": "user", "content": text}, {"role": "assistant", "content": answer}]
        # the page sent the whole conversation: the server's own reply to it is the same (greedy)
        assert answer == _server_reply(url, turns[:-1], 12)
    assert browser.evaluate("messages.length") == 4
    assert browser.evaluate("[...document.querySelectorAll('#log .msg')].length") == 4
    browser.click("#reset")
    assert browser.evaluate("messages.length") == 0
    requested = [e["params"]["request"]["url"] for e in browser.events if e.get("method") == "Network.requestWillBeSent"]
    assert requested and all(u.startswith(url) for u in requested), requested  # nothing leaves the machine

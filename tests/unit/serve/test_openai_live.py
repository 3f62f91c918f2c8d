"""The OpenAI-compatible routes over real sockets (uvicorn in a thread, fake engine): client disconnects cancel the
generation, concurrent requests decode together, and a shutdown lets a stream in flight finish."""
from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from urllib.parse import urlparse

import pytest
from serve_helpers import FakeEngine, LiveServer, wait_ready

from tuneforge.serve.app import ServeSettings, create_app
from tuneforge.serve.generator import ServedGenerator

HELLO = [{"role": "user", "content": "Say hello"}]


@pytest.fixture(scope="module")
def causal(tiny_causal_dir):
    from tuneforge.model.causal import load_causal_lm, load_causal_tokenizer

    return load_causal_lm(str(tiny_causal_dir)), load_causal_tokenizer(str(tiny_causal_dir))


def live(causal, engine: FakeEngine, **settings) -> LiveServer:
    generator = ServedGenerator(*causal, make_engine=lambda max_batch: engine)
    return LiveServer(create_app(generator, ServeSettings(**settings)))


def wait_for(condition, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def raw_request(url: str, body: dict) -> socket.socket:
    """A POST written by hand on a socket the test can close whenever it likes."""
    host, port = urlparse(url).hostname, urlparse(url).port
    sock = socket.create_connection((host, port), timeout=10)
    data = json.dumps(body).encode()
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(data), data))
    return sock


@pytest.mark.parametrize("stream", [True, False])
def test_a_client_that_disconnects_cancels_its_generation(causal, stream):
    engine = FakeEngine(step_s=0.02, endless=True)
    with live(causal, engine) as url:
        wait_ready(url)
        sock = raw_request(url, {"messages": HELLO, "stream": stream, "max_tokens": 90})
        if stream:
            received = b""
            while b"Hello" not in received:  # the first token arrived: the generation is running
                chunk = sock.recv(4096)
                assert chunk, received
                received += chunk
        else:
            wait_for(lambda: engine.steps > 3, "the generation never started")
        sock.close()
        wait_for(lambda: engine.cancelled, "the engine never saw the cancel")  # a generation that ends is not
        steps = engine.steps
    assert engine.active == 0 and steps < 60  # stopped long before max_tokens


def _stream(url: str, body: dict, out: list) -> None:
    parsed = urlparse(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    conn.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json",
                                                                     "X-Request-ID": f"req-{len(out)}"})
    response = conn.getresponse()
    out.append((response.status, response.getheader("x-request-id"), response.read().decode()))
    conn.close()


def test_concurrent_requests_decode_together_and_a_shutdown_lets_streams_finish(causal):
    engine = FakeEngine(step_s=0.01, endless=True)
    server = live(causal, engine)
    with server as url:
        wait_ready(url)
        results: list = []
        threads = [threading.Thread(target=_stream, args=(url, {"messages": HELLO, "stream": True,
                                                                 "max_tokens": 40}, results)) for _ in range(2)]
        for t in threads:
            t.start()
        wait_for(lambda: engine.max_active == 2, "the two requests never decoded in the same step")
        server.stop()  # what SIGTERM does: no new connections, in-flight requests finish, then the batcher drains
        for t in threads:
            t.join(30)
    assert len(results) == 2 and all(status == 200 for status, _, _ in results)
    for status, request_id, text in results:
        assert request_id and request_id.startswith("req-")
        events = [line[len("data: "):] for line in text.split("\n\n") if line]
        assert events[-1] == "[DONE]" and json.loads(events[-2])["choices"][0]["finish_reason"] == "length"
        assert sum(1 for e in events[1:-2] if json.loads(e)["choices"][0]["delta"].get("content")) == 40
    assert engine.cancelled == []

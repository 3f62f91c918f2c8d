"""tuneforge.Client against a real uvicorn server on a loopback port; batching and draining over real sockets."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from serve_helpers import (
    LABELS,
    FakePredictor,
    LiveServer,
    build_classifier,
    wait_ready,
)

import tuneforge
from conftest import fp_tolerance
from tuneforge.client import ServerError
from tuneforge.serve.app import ServeSettings, create_app

KEY = "client-test-key"


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model):
    from tuneforge.serve.load import load

    folder = build_classifier(tmp_path_factory.mktemp("client") / "clf", tiny_model)
    predictor = load(str(folder))
    app = create_app(predictor, ServeSettings(model_path=str(folder), api_key=KEY, max_texts=8))
    with LiveServer(app) as url:
        wait_ready(url)
        yield {"url": url, "predictor": predictor}


def test_client_is_exported_lazily():
    assert "Client" in tuneforge.__all__ and tuneforge.Client is tuneforge.client.Client


def test_predict_embed_health_and_model_info(server):
    client = tuneforge.Client(server["url"] + "/", api_key=KEY)
    texts = ["great lovely staff", "awful slow room"]
    predictions = client.predict(texts)
    want = server["predictor"].predict(texts)
    assert [p["label"] for p in predictions] == [w["label"] for w in want]
    assert set(predictions[0]["probabilities"]) == set(LABELS)
    vectors = np.asarray(client.embed(texts, pooling="cls"))
    want = server["predictor"].embed(texts, "cls")
    # The same math (JSON carries float32 exactly), though the server may batch and pad differently: 2 layers over
    # the padded length, 32 hidden, 64 FFN.
    seq = max(len(server["predictor"].tokenizer(t)["input_ids"]) for t in texts)
    tol = fp_tolerance(np.float32, 2 * (seq + 32 + 64))
    np.testing.assert_allclose(vectors, want, atol=tol * np.abs(want).max(), rtol=tol)
    assert client.health() == {"status": "ok"} and client.ready() is True
    info = client.model_info()
    assert info["labels"] == list(LABELS) and len(info["hashes"]["model.safetensors"]) == 64


def test_errors_raise_server_error_with_status_message_and_request_id(server):
    with pytest.raises(ServerError) as wrong_key:
        tuneforge.Client(server["url"], api_key="nope").predict(["a"])
    assert wrong_key.value.status == 401 and "API key" in str(wrong_key.value) and wrong_key.value.request_id
    client = tuneforge.Client(server["url"], api_key=KEY)
    with pytest.raises(ServerError) as too_many:
        client.predict(["a"] * 9)
    assert too_many.value.status == 413 and "the limit is 8" in str(too_many.value)
    with pytest.raises(ServerError) as bad_pooling:
        client.embed(["a"], pooling="max")
    assert bad_pooling.value.status == 422 and "pooling" in str(bad_pooling.value)
    with pytest.raises(TypeError, match="list of texts"):
        client.predict("a single string")
    assert tuneforge.Client(server["url"]).health()["status"] == "ok"  # open without a key


def _concurrent_calls(batching: bool) -> list[list[str]]:
    """12 concurrent one-text requests against a model that takes 50 ms per call; returns the model's calls."""
    fake = FakePredictor(delay=0.05)
    app = create_app(fake, ServeSettings(batching=batching, max_wait_ms=20))
    with LiveServer(app) as url:
        wait_ready(url)
        fake.calls.clear()
        client = tuneforge.Client(url)
        with ThreadPoolExecutor(12) as pool:
            results = list(pool.map(lambda i: client.predict([f"t{i} yes" if i % 2 else f"t{i}"]), range(12)))
    assert [r[0]["label"] for r in results] == ["yes" if i % 2 else "no" for i in range(12)]  # each got its own
    return fake.calls


def test_concurrent_requests_share_model_calls_only_with_batching():
    batched = _concurrent_calls(batching=True)
    assert sum(map(len, batched)) == 12 and len(batched) < 12 and max(map(len, batched)) > 1
    alone = _concurrent_calls(batching=False)
    assert sorted(map(len, alone)) == [1] * 12


def test_shutdown_drains_in_flight_requests():
    fake = FakePredictor(delay=0.8)
    server = LiveServer(create_app(fake, ServeSettings()))
    with server as url:
        wait_ready(url)
        result: dict = {}
        worker = threading.Thread(target=lambda: result.update(r=tuneforge.Client(url).predict(["yes"])))
        worker.start()
        deadline = time.monotonic() + 5
        while len(fake.calls) < 2 and time.monotonic() < deadline:  # warm-up, then this request, in the model
            time.sleep(0.01)
        server.stop()  # what SIGTERM does: stop accepting, finish in-flight requests, then the lifespan's shutdown
        worker.join(10)
    assert result["r"][0]["label"] == "yes"
    assert not server.thread.is_alive()


def test_translate_over_http_sends_only_the_settings_given():
    """Client.translate against a served translator (a recording stand-in): texts in order, defaults left to the
    server, a bad setting a ServerError with the server's status."""
    from translate_helpers import FakeTranslator

    from tuneforge.serve.translator import ServedTranslator

    fake = FakeTranslator()
    with LiveServer(create_app(ServedTranslator(fake), ServeSettings())) as url:
        wait_ready(url)
        client = tuneforge.Client(url)
        assert client.translate(["a b", "", "c"], beams=2) == ["b a #2", "", "c #2"]
        assert fake.calls[-1][1] == {"beams": 2, "length_penalty": 1.0, "max_new_tokens": None, "no_repeat_ngram": 0}
        assert client.translate(["x y"]) == ["y x #4"]  # the server's default beam
        with pytest.raises(ServerError) as err:
            client.translate(["a"], beams=99)
        assert err.value.status == 400

"""The HTTP app in process (FastAPI TestClient) on the tiny classifier: answers, limits, auth, metrics, hygiene."""
from __future__ import annotations

import hashlib
import logging
import re

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serve_helpers import FakePredictor, LABELS, build_classifier, client_ready

import tuneforge
from conftest import fp_tolerance
from tuneforge.errors import UserError
from tuneforge.serve.app import ServeSettings, create_app
from tuneforge.serve.middleware import RequestIdFilter

TEXTS = ["great lovely staff", "the food was awful and the room was slow", "okay"]
KEY = "s3cret-key"


def _tolerance(predictor, pooled: bool = False) -> float:
    """The tiny classifier's rounding bound on TEXTS, however the server batches and pads them: 2 layers over the
    padded length, 32 hidden, 64 FFN; then a mean over the length (pooled) or pooler, classifier (32 each) and the
    softmax over 3 labels. Probabilities (<= 1) move by at most the unit-scale logits' error."""
    seq = max(len(predictor.tokenizer(t)["input_ids"]) for t in TEXTS)
    return fp_tolerance(np.float32, 2 * (seq + 32 + 64) + (seq if pooled else 2 * 32 + 3))


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory, tiny_model):
    return build_classifier(tmp_path_factory.mktemp("serve") / "clf", tiny_model)


@pytest.fixture(scope="module")
def predictor(classifier_dir):
    from tuneforge.serve.load import load

    return load(str(classifier_dir))


def _client(predictor, **settings):
    return TestClient(create_app(predictor, ServeSettings(**settings)))



@pytest.fixture(scope="module")
def client(predictor, classifier_dir):
    with _client(predictor, model_path=str(classifier_dir)) as c:
        yield client_ready(c)


def test_predict_matches_the_predictor_in_input_order(client, predictor):
    r = client.post("/v1/predict", json={"texts": TEXTS})
    assert r.status_code == 200, r.text
    got, want = r.json()["predictions"], predictor.predict(TEXTS)
    assert [p["label"] for p in got] == [p["label"] for p in want]
    for g, w in zip(got, want):
        assert set(g["probabilities"]) == set(LABELS)
        # + 1e-6: both answers round probabilities to 6 decimals
        assert g["probabilities"] == pytest.approx(w["probabilities"], abs=_tolerance(predictor) + 1e-6)
        # a softmax sums to 1 within 3 terms' rounding, plus 3 roundings to 6 decimals (<= 5e-7 each)
        assert sum(g["probabilities"].values()) == pytest.approx(1.0, abs=fp_tolerance(np.float32, 3) + 3 * 5e-7)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_embed_matches_the_predictor(client, predictor, pooling):
    r = client.post("/v1/embed", json={"texts": TEXTS, "pooling": pooling})
    assert r.status_code == 200, r.text
    body = r.json()
    vectors = np.array(body["embeddings"])
    assert vectors.shape == (3, 32) and body["dim"] == 32 and body["pooling"] == pooling
    want = predictor.embed(TEXTS, pooling)
    tol = _tolerance(predictor, pooled=True)
    np.testing.assert_allclose(vectors, want, atol=tol * float(np.abs(want).max()), rtol=tol)


def test_embed_default_pooling_is_mean_and_differs_from_cls(client):
    mean = client.post("/v1/embed", json={"texts": TEXTS[:1]}).json()
    cls = client.post("/v1/embed", json={"texts": TEXTS[:1], "pooling": "cls"}).json()
    # not a rounding bound: two different poolings (behavioural), np.allclose's defaults are ample
    assert mean["pooling"] == "mean" and not np.allclose(mean["embeddings"], cls["embeddings"])


@pytest.mark.parametrize("body, needle", [
    ({"texts": []}, "texts"),
    ({"texts": "a plain string"}, "texts"),
    ({"texts": [1, 2]}, "texts.0"),
    ({"text": ["typo in the field name"]}, "texts"),
    ({"texts": ["a"], "pooling": "max"}, "pooling"),
])
def test_invalid_bodies_are_422_with_a_one_line_message(client, body, needle):
    path = "/v1/embed" if "pooling" in body else "/v1/predict"
    r = client.post(path, json=body)
    assert r.status_code == 422, r.text
    assert needle in r.json()["message"] and isinstance(r.json()["detail"], list)
    assert "input" not in r.json()["detail"][0]  # the body is not echoed back


def test_bad_json_and_wrong_content_type_say_what_to_send(client):
    r = client.post("/v1/predict", content=b'{"texts": [', headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "not valid JSON" in r.json()["message"]
    r = client.post("/v1/predict", content=b'{"texts": ["a"]}', headers={"Content-Type": "text/plain"})
    assert r.status_code == 422 and "Content-Type: application/json" in r.json()["message"]


@pytest.mark.parametrize("raw, status, needle", [
    (b"[" * 50_000 + b"]" * 50_000, 400, "nested too deeply"),  # RecursionError in the JSON parser
    (b'{"texts": ["caf\xe9"]}', 400, "not UTF-8"),
    (b'{"texts": ["\\ud800 lone surrogate"]}', 422, "not valid Unicode"),  # valid JSON, unusable text
])
def test_hostile_bodies_get_a_4xx_never_a_500(client, raw, status, needle):
    for path in ("/v1/predict", "/v1/embed"):
        r = client.post(path, content=raw, headers={"Content-Type": "application/json"})
        assert r.status_code == status, r.text
        assert needle in str(r.json().get("message", r.json()["detail"]))


def test_too_many_texts_is_413_and_a_long_text_is_422(predictor):
    with _client(predictor, max_texts=3, max_chars=10) as c:
        r = c.post("/v1/predict", json={"texts": ["a"] * 4})
        assert r.status_code == 413 and "too many texts: 4; the limit is 3" in r.json()["detail"]
        r = c.post("/v1/embed", json={"texts": ["short", "x" * 11]})
        assert r.status_code == 422 and "11 characters; the limit is 10" in r.json()["message"]
        assert r.json()["detail"][0]["loc"] == ["body", "texts", 1]
        assert c.post("/v1/predict", json={"texts": ["a"] * 3}).status_code == 200


def test_body_over_the_byte_limit_is_413_declared_or_chunked(predictor):
    settings = ServeSettings(max_texts=2, max_chars=10)
    with TestClient(create_app(predictor, settings)) as c:
        big = b'{"texts": ["' + b"x" * settings.max_body_bytes + b'"]}'
        r = c.post("/v1/predict", content=big, headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and "body too large" in r.json()["detail"]
        chunks = (big[i:i + 1000] for i in range(0, len(big), 1000))  # no Content-Length: counted while reading
        r = c.post("/v1/predict", content=chunks, headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and "body too large" in r.json()["detail"]


def test_api_key_protects_v1_and_metrics_only(predictor):
    with _client(predictor, api_key=KEY) as c:
        client_ready(c)
        for path in ("/v1/predict", "/v1/embed"):
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
                r = c.post(path, json={"texts": ["a"]}, headers=headers)
                assert r.status_code == 401, (path, headers)
                assert r.headers["www-authenticate"] == "Bearer" and "API key" in r.json()["detail"]
        assert c.get("/v1/model").status_code == 401 and c.get("/metrics").status_code == 401
        # auth comes before the body is read: no hint about the payload to a caller without the key
        assert c.post("/v1/predict", content=b"{", headers={"Content-Type": "application/json"}).status_code == 401
        ok = {"Authorization": f"Bearer {KEY}"}
        assert c.post("/v1/predict", json={"texts": ["a"]}, headers=ok).status_code == 200
        assert c.get("/metrics", headers=ok).status_code == 200 and c.get("/v1/model", headers=ok).status_code == 200
        for path in ("/health", "/ready", "/", "/docs", "/openapi.json"):
            assert c.get(path).status_code == 200, path
        assert "HTTPBearer" in c.get("/openapi.json").json()["components"]["securitySchemes"]


def test_ready_is_503_until_the_warm_up_call_returns():
    fake = FakePredictor()
    fake.gate.clear()  # the warm-up call blocks
    with TestClient(create_app(fake, ServeSettings())) as c:
        assert c.get("/health").json() == {"status": "ok"}
        r = c.get("/ready")
        assert r.status_code == 503 and r.json() == {"status": "loading"}
        assert "tuneforge_model_ready 0" in c.get("/metrics").text
        fake.gate.set()
        client_ready(c)
        assert c.get("/ready").json() == {"status": "ready"} and "tuneforge_model_ready 1" in c.get("/metrics").text
    assert fake.calls[0] == ["warm up"]


def test_model_info_names_labels_version_and_hashes(client, classifier_dir):
    info = client.get("/v1/model").json()
    weights = hashlib.sha256((classifier_dir / "model.safetensors").read_bytes()).hexdigest()
    assert info["name"] == "clf" and info["task"] == "classification" and info["backend"] == "pytorch"
    assert info["labels"] == list(LABELS) and info["multi_label"] is False
    assert info["version"] == tuneforge.__version__ and info["created"] == "2026-01-01T00:00:00Z"
    assert info["hashes"] == {"model.safetensors": weights, "config_sha256": "c" * 64, "data.train": "d" * 64}
    assert info["max_length"] == 64 and info["manifest"]["labels"] == list(LABELS)


def _count(text: str, line_start: str) -> float:
    match = re.search(rf"^{re.escape(line_start)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_metrics_count_requests_latency_and_batch_sizes(client):
    before = client.get("/metrics").text
    for _ in range(2):
        client.post("/v1/predict", json={"texts": TEXTS})
    client.post("/v1/predict", json={"texts": []})
    r = client.get("/metrics")
    after = r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    ok, bad = 'tuneforge_requests_total{endpoint="/v1/predict",status="200"}', \
        'tuneforge_requests_total{endpoint="/v1/predict",status="422"}'
    assert _count(after, ok) == _count(before, ok) + 2 and _count(after, bad) == _count(before, bad) + 1
    latency = 'tuneforge_request_duration_seconds_count{endpoint="/v1/predict"}'
    assert _count(after, latency) == _count(before, latency) + 3
    assert 'tuneforge_request_duration_seconds_bucket{endpoint="/v1/predict",le="+Inf"}' in after
    assert _count(after, "tuneforge_batch_size_texts_count") == _count(before, "tuneforge_batch_size_texts_count") + 2
    assert _count(after, "tuneforge_batch_size_texts_sum") == _count(before, "tuneforge_batch_size_texts_sum") + 6
    assert "# TYPE tuneforge_batch_size_texts histogram" in after and "tuneforge_model_ready 1" in after
    client.get("/no/such/path/123")
    assert "/no/such/path" not in client.get("/metrics").text  # unknown paths share the label "other"


def test_request_id_is_echoed_or_generated_and_logged(client, caplog):
    caplog.handler.addFilter(RequestIdFilter())
    with caplog.at_level(logging.INFO, logger="tuneforge.serve"):
        r = client.post("/v1/predict", json={"texts": ["a"]}, headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    assert any(rec.request_id == "abc-123" and "POST /v1/predict 200" in rec.getMessage() for rec in caplog.records)
    generated = client.get("/health").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    unsafe = client.get("/health", headers={"X-Request-ID": "two words"}).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", unsafe)  # not safe for log lines: replaced
    assert client.post("/v1/predict", json={"texts": []}).json()["request_id"]


def test_an_internal_error_is_a_generic_500_without_traceback(caplog):
    fake = FakePredictor(fail_with=RuntimeError("secret detail at /srv/models/x.py line 3"))
    caplog.handler.addFilter(RequestIdFilter())
    with TestClient(create_app(fake, ServeSettings())) as c, caplog.at_level(logging.ERROR, "tuneforge.serve"):
        r = c.post("/v1/predict", json={"texts": ["a"]}, headers={"X-Request-ID": "req-500"})
        assert r.status_code == 500
        assert r.json() == {"detail": "internal server error", "request_id": "req-500"}
        assert "secret" not in r.text and "Traceback" not in r.text
        assert c.get("/health").status_code == 200  # the server keeps serving
    logged = [rec for rec in caplog.records if rec.request_id == "req-500" and rec.exc_info]
    assert logged and "secret detail" in str(logged[0].exc_info[1])


def test_an_encoder_embeds_but_refuses_to_predict(tiny_model):
    from tuneforge.serve.load import load

    with _client(load(str(tiny_model)), model_path=str(tiny_model)) as c:
        client_ready(c)
        r = c.post("/v1/predict", json={"texts": ["a"]})
        assert r.status_code == 400 and "no classification head" in r.json()["detail"]
        assert np.array(c.post("/v1/embed", json={"texts": ["a", "b"]}).json()["embeddings"]).shape == (2, 32)
        info = c.get("/v1/model").json()
        assert info["task"] == "encoder" and info["labels"] == [] and "model.safetensors" in info["hashes"]


def test_page_and_docs_are_served_offline(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="text"' in page.text and 'id="result"' in page.text and "v1/predict" in page.text
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", page.text)  # no CDN: works without network
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger-ui-bundle.js" in docs.text
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", docs.text)  # the docs' assets are packaged too
    for asset in re.findall(r"(?:src|href)=[\"']([^\"']+\.(?:js|css))", docs.text):
        assert client.get(asset).status_code == 200, asset
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/predict", "/v1/embed", "/v1/model", "/health", "/ready", "/metrics"} <= set(paths)


# slow: needs the session's ONNX export (~8 s of tracing). The app's answers from the PyTorch predictor, in fast:
# test_predict_matches_the_predictor_in_input_order; the ONNX predictor's own tests: unit test_export.py.
@pytest.mark.slow
def test_an_onnx_export_is_served_with_the_same_answers(classifier_dir, predictor, tiny_classifier_onnx):
    """The session's export of the same classifier (conftest.tiny_classifier_dir: build_classifier, tiny model)."""
    from tuneforge.recipes.serve import load_predictor

    exported = tiny_classifier_onnx[0]
    with pytest.raises(UserError, match="--spinning"):
        load_predictor(str(classifier_dir), threads=1, spinning="always")  # a PyTorch folder: one line, no TypeError
    spun, _ = load_predictor(str(exported), threads=1, spinning="off")
    assert spun.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"
    del spun
    onnx, folder = load_predictor(str(exported), threads=1)
    with _client(onnx, model_path=folder) as c:
        client_ready(c)
        got = c.post("/v1/predict", json={"texts": TEXTS}).json()["predictions"]
        for g, w in zip(got, predictor.predict(TEXTS)):
            assert g["label"] == w["label"]
            # ONNX Runtime's kernels vs PyTorch's: the same math; + 1e-6 for the rounding to 6 decimals
            assert g["probabilities"] == pytest.approx(w["probabilities"], abs=_tolerance(predictor) + 1e-6)
        info = c.get("/v1/model").json()
        assert info["backend"] == "onnx" and set(info["hashes"]) >= {"model.onnx", "config_sha256"}
        r = c.post("/v1/embed", json={"texts": ["a"]})  # an exported classifier outputs logits only
        assert r.status_code == 400 and "outputs logits only" in r.json()["detail"]

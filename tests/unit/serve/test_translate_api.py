"""POST /v1/translate in process (FastAPI TestClient): the tiny MBart through `tuneforge.load` gives the same text as
the Translator itself, empty texts stay empty; limits, auth, metrics, dynamic batching (with a fake translator that
records its calls), /v1/model, the page, and the routes of the other model kinds."""
from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient
from serve_helpers import FakePredictor, client_ready
from translate_helpers import FakeTranslator, build_tiny_mbart

import tuneforge
from tuneforge.errors import UserError
from tuneforge.serve.app import ServeSettings, create_app
from tuneforge.serve.translator import DecodeOptions, ServedTranslator, as_translator

TEXTS = ["a man is riding a bike .", "zwei kinder spielen im park", "the dog"]
KEY = "s3cret-key"


@pytest.fixture(scope="module")
def mbart_dir(tmp_path_factory):
    return build_tiny_mbart(tmp_path_factory.mktemp("mbart") / "tiny-mbart")


@pytest.fixture(scope="module")
def translator(mbart_dir):
    import torch

    threads = torch.get_num_threads()
    loaded = tuneforge.load(str(mbart_dir), threads=1)
    yield loaded
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def client(translator, mbart_dir):
    with TestClient(create_app(translator, ServeSettings(model_path=str(mbart_dir)))) as c:
        yield client_ready(c)


def test_load_gives_a_translator_and_the_app_serves_it(translator, mbart_dir, monkeypatch):
    import tuneforge.hardware as hardware

    assert type(translator).__name__ == "Translator" and hasattr(translator, "translate")
    # an encoder-decoder's default precision is auto: bf16 decoding where the CPU computes bf16 natively
    assert translator.precision == ("bf16" if hardware.cpu_has_native_bf16() else "fp32")
    for native, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda native=native: native)
        assert tuneforge.load(str(mbart_dir)).precision == expected
    assert tuneforge.load(str(mbart_dir), precision="fp32").precision == "fp32"
    with pytest.raises(UserError, match="precision 'int8'"):
        tuneforge.load(str(mbart_dir), precision="int8")
    served = as_translator(translator)
    assert isinstance(served, ServedTranslator) and served.task == "translation" and served.positions == 64


def test_translate_matches_the_translator_in_input_order(client, translator):
    r = client.post("/v1/translate", json={"texts": TEXTS})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["translations"] == translator.translate(TEXTS, beams=4) and body["model"] == "tiny-mbart"
    greedy = client.post("/v1/translate", json={"texts": TEXTS, "beams": 1, "max_new_tokens": 5}).json()
    assert greedy["translations"] == translator.translate(TEXTS, beams=1, max_new_tokens=5)
    assert all(len(t.split()) <= 5 for t in greedy["translations"])  # one word per token in this vocabulary


def test_empty_texts_translate_to_empty_strings_without_touching_their_neighbours(client, translator):
    r = client.post("/v1/translate", json={"texts": ["", TEXTS[2], "   "], "beams": 1})
    assert r.status_code == 200, r.text
    assert r.json()["translations"] == ["", translator.translate([TEXTS[2]], beams=1)[0], ""]


@pytest.mark.parametrize("body, status, needle", [
    ({"texts": ["a"], "beams": 0}, 422, "beams"),
    ({"texts": ["a"], "beams": 9}, 400, "--max-beams"),
    ({"texts": ["a"], "max_new_tokens": 0}, 422, "max_new_tokens"),
    ({"texts": ["a"], "max_new_tokens": 2000}, 400, "--max-tokens"),
    ({"texts": ["a"], "max_new_tokens": 65}, 400, "64 target positions"),
    ({"texts": ["a"], "no_repeat_ngram": -1}, 422, "no_repeat_ngram"),
    ({"texts": ["a"], "temperature": 0.5}, 422, "temperature"),
    ({"texts": []}, 422, "texts"),
    ({"texts": "one string"}, 422, "texts"),
])
def test_bad_options_are_a_4xx_with_one_line(client, body, status, needle):
    r = client.post("/v1/translate", json=body)
    assert r.status_code == status, r.text
    message = r.json().get("message", r.json()["detail"])
    assert isinstance(message, str) and "\n" not in message and needle in message


def test_nan_length_penalty_is_refused(client):
    r = client.post("/v1/translate", content=b'{"texts": ["a"], "length_penalty": NaN}',
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "length_penalty" in r.json()["message"]


def test_text_limits_are_the_classifier_limits():
    fake = FakeTranslator()
    with TestClient(create_app(ServedTranslator(fake), ServeSettings(max_texts=2, max_chars=10))) as c:
        client_ready(c)
        r = c.post("/v1/translate", json={"texts": ["a", "b", "c"]})
        assert r.status_code == 413 and "--max-texts" in r.json()["detail"]
        r = c.post("/v1/translate", json={"texts": ["a", "x" * 11]})
        assert r.status_code == 422 and "--max-chars" in r.json()["message"] and "texts.1" in r.json()["message"]
        r = c.post("/v1/translate", content=b'{"texts": ["\\ud800"]}', headers={"Content-Type": "application/json"})
        assert r.status_code == 422 and "not valid Unicode" in r.json()["message"]
        r = c.post("/v1/translate", content=b"x" * 300_000, headers={"Content-Type": "application/json"})
        assert r.status_code == 413


def test_api_key_guards_translate_and_model_info():
    with TestClient(create_app(ServedTranslator(FakeTranslator()), ServeSettings(api_key=KEY))) as c:
        client_ready(c)
        assert c.post("/v1/translate", json={"texts": ["a b"]}).status_code == 401
        assert c.get("/v1/model").status_code == 401
        ok = {"Authorization": f"Bearer {KEY}"}
        r = c.post("/v1/translate", json={"texts": ["a b"]}, headers=ok)
        assert r.status_code == 200 and r.json()["translations"] == ["b a #4"]
        assert c.get("/").status_code == 200 and c.get("/health").status_code == 200


def test_concurrent_requests_with_the_same_options_share_one_model_call():
    fake = FakeTranslator()
    with TestClient(create_app(ServedTranslator(fake), ServeSettings(max_wait_ms=200))) as c:
        client_ready(c)
        fake.calls.clear()
        fake.gate.clear()  # the first call blocks, so the rest queue up behind it
        results: dict[int, dict] = {}

        def send(i: int, beams: int) -> None:
            results[i] = c.post("/v1/translate", json={"texts": [f"s{i} x", f"s{i} y"], "beams": beams}).json()

        threads = [threading.Thread(target=send, args=(0, 2))]
        threads[0].start()
        while not fake.calls:
            time.sleep(0.01)
        threads += [threading.Thread(target=send, args=(i, 2 if i < 4 else 1)) for i in range(1, 6)]
        for t in threads[1:]:
            t.start()
        time.sleep(0.5)  # every request queued
        fake.gate.set()
        for t in threads:
            t.join(10)
        assert [r["translations"] for r in map(results.get, range(6))] == \
            [[f"x s{i} #{2 if i < 4 else 1}", f"y s{i} #{2 if i < 4 else 1}"] for i in range(6)]
        beams_of_calls = [(len(texts), options["beams"]) for texts, options in fake.calls]
        # the blocked call, then one call per decoding options (in arrival order); beam 1 never joins a beam-2 call
        assert beams_of_calls[0] == (2, 2) and sorted(beams_of_calls[1:]) == [(4, 1), (6, 2)]
        metrics = c.get("/metrics").text
        assert 'tuneforge_requests_total{endpoint="/v1/translate",status="200"} 6' in metrics
        assert "tuneforge_batch_size_requests_count 4" in metrics  # the warm-up and three merged calls


def test_a_failing_text_fails_only_its_own_request():
    fake = FakeTranslator()
    with TestClient(create_app(ServedTranslator(fake), ServeSettings()), raise_server_exceptions=False) as c:
        client_ready(c)
        assert c.post("/v1/translate", json={"texts": ["boom"]}).status_code == 500
        assert c.post("/v1/translate", json={"texts": ["fine text"]}).json()["translations"] == ["text fine #4"]


def test_model_info_describes_the_translator(client):
    info = client.get("/v1/model").json()
    assert info["task"] == "translation" and info["labels"] == [] and info["name"] == "tiny-mbart"
    assert info["translation"] == {"beams": 4, "max_beams": 8, "length_penalty": 1.0, "no_repeat_ngram": 0,
                                   "max_new_tokens": None, "max_new_tokens_limit": 64,
                                   "max_source_tokens": info["max_length"]}
    assert info["manifest"]["task"] == "translation" and "model.safetensors" in info["hashes"]


def test_page_is_a_translate_box_and_routes_follow_the_model_kind(client):
    page = client.get("/").text
    assert 'id="text"' in page and 'id="beams"' in page and "v1/translate" in page and "v1/predict" not in page
    for path in ("/v1/predict", "/v1/embed", "/v1/chat/completions", "/v1/completions"):
        r = client.post(path, json={"texts": ["a"]})
        assert r.status_code == 400 and "/v1/translate" in r.json()["detail"], path
    assert "/v1/translate" in client.get("/openapi.json").json()["paths"]
    with TestClient(create_app(FakePredictor(), ServeSettings())) as classifier:
        r = classifier.post("/v1/translate", json={"texts": ["a"]})
        assert r.status_code == 400 and "a classifier" in r.json()["detail"] and "encoder-decoder" in r.json()["detail"]
        assert "/v1/translate" not in classifier.get("/openapi.json").json()["paths"]


def test_options_fill_defaults_and_name_the_limit():
    served = ServedTranslator(FakeTranslator())
    assert served.options(None, None, None, None, 8, 1024) == DecodeOptions(4, None, 1.0, 0)
    assert served.options(2, 10, 0.6, 3, 8, 1024) == DecodeOptions(2, 10, 0.6, 3)
    with pytest.raises(UserError, match="--max-beams"):
        served.options(16, None, None, None, 8, 1024)
    assert served.translate(["", " ", "a b"], DecodeOptions(beams=1)) == ["", "", "b a #1"]
    assert len(served.translator.calls) == 1 and served.translator.calls[0][0] == ["a b"]
    assert served.translate(["", "\t"]) == ["", ""] and len(served.translator.calls) == 1  # no model call at all

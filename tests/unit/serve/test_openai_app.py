"""The OpenAI-compatible routes in process (FastAPI TestClient), on the tiny causal LM's tokenizer and config with
a scripted fake engine: response and SSE shapes, usage, errors, limits, auth, routes by model kind, metrics, page."""
from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient
from serve_helpers import FakeEngine, client_ready

from tuneforge.serve import openai_schemas as oa
from tuneforge.serve.app import ServeSettings, create_app
from tuneforge.serve.generator import ServedGenerator

KEY = "chat-key"
HELLO = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]
WORDS = "".join(FakeEngine.WORDS)


@pytest.fixture(scope="module")
def causal(tiny_causal_dir):
    from tuneforge.model.causal import load_causal_lm, load_causal_tokenizer

    return load_causal_lm(str(tiny_causal_dir)), load_causal_tokenizer(str(tiny_causal_dir))


def make_client(causal, folder=None, engine=None, tokenizer=None, **settings):
    engine = engine or FakeEngine()
    generator = ServedGenerator(causal[0], tokenizer or causal[1], make_engine=lambda max_batch: engine)
    client = TestClient(create_app(generator, ServeSettings(model_path=str(folder) if folder else None, **settings)))
    return client, engine



@pytest.fixture(scope="module")
def served(causal, tiny_causal_dir):
    client, engine = make_client(causal, tiny_causal_dir)
    with client:
        yield client_ready(client), engine


@pytest.fixture(scope="module")
def name(served) -> str:
    """The served model's name (the folder's), as /v1/model reports it."""
    return served[0].get("/v1/model").json()["name"]


def sse_events(text: str) -> list[dict]:
    """The JSON of each `data:` event; asserts the framing (blank-line separated, ends with `data: [DONE]`)."""
    assert text.endswith("\n\n"), text[-50:]
    blocks = text[:-2].split("\n\n")
    assert all(b.startswith("data: ") for b in blocks), blocks
    assert blocks[-1] == "data: [DONE]"
    return [json.loads(b[len("data: "):]) for b in blocks[:-1]]


def test_chat_completion_has_openai_shape_text_and_usage(served, causal, name):
    client, engine = served
    r = client.post("/v1/chat/completions", json={"model": "anything", "messages": HELLO, "max_tokens": 3,
                                                  "temperature": 0, "user": "u-1", "metadata": {"x": 1}})
    assert r.status_code == 200, r.text
    body = oa.ChatCompletion.model_validate(r.json())
    assert body.id.startswith("chatcmpl-") and body.model == name and body.object == "chat.completion"
    assert body.choices[0].message.content == "Hello, world" and body.choices[0].finish_reason == "length"
    prompt_ids, settings = engine.added[-1]
    assert body.usage.prompt_tokens == len(prompt_ids) and body.usage.completion_tokens == 3
    assert body.usage.total_tokens == len(prompt_ids) + 3
    assert settings.max_new_tokens == 3 and settings.temperature == 0
    text = causal[1].decode(prompt_ids)
    assert "Say hello" in text and "Be brief." in text and text != "Be brief.Say hello"  # through the template


def test_streamed_chat_sends_role_then_deltas_then_finish_and_usage(served):
    client, _ = served
    r = client.post("/v1/chat/completions", json={"messages": HELLO, "stream": True,
                                                  "stream_options": {"include_usage": True}})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    chunks = [oa.ChatCompletionChunk.model_validate(e) for e in events]
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[0].choices[0].delta.content == ""
    content = [c.choices[0].delta.content for c in chunks[1:-2]]
    assert "".join(content) == WORDS and all(content)  # one event per token; the end-of-text token adds none
    assert chunks[-2].choices[0].finish_reason == "stop" and chunks[-2].choices[0].delta.content is None
    assert all(c.choices[0].finish_reason is None for c in chunks[:-2])
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == len(FakeEngine.WORDS) + 1
    assert all(e["usage"] is None for e in events[:-1])  # OpenAI's shape when usage is asked for


def test_stream_without_include_usage_has_no_usage_chunk(served):
    client, _ = served
    events = sse_events(client.post("/v1/chat/completions", json={"messages": HELLO, "stream": True,
                                                                   "max_tokens": 2}).text)
    assert events[-1]["choices"][0]["finish_reason"] == "length" and all("usage" not in e for e in events)


def test_completions_whole_and_streamed(served, causal):
    client, engine = served
    r = client.post("/v1/completions", json={"prompt": "Once upon a time", "max_tokens": 4, "seed": 7,
                                             "stop": ["\n\n", "The end"]})
    body = oa.Completion.model_validate(r.json())
    assert body.id.startswith("cmpl-") and body.choices[0].text == "Hello, world!"
    assert body.usage.prompt_tokens == len(engine.added[-1][0]) and body.usage.completion_tokens == 4
    assert "Once upon a time" in causal[1].decode(engine.added[-1][0])
    settings = engine.added[-1][1]
    assert settings.stop == ("\n\n", "The end") and settings.seed == 7 and settings.temperature == 1.0
    events = sse_events(client.post("/v1/completions", json={"prompt": [[5, 6, 7]], "max_tokens": 2,
                                                             "stream": True}).text)
    chunks = [oa.CompletionChunk.model_validate(e) for e in events]
    assert engine.added[-1][0] == [5, 6, 7]  # token ids go to the engine as they are
    assert "".join(c.choices[0].text for c in chunks) == "Hello," and chunks[-1].choices[0].finish_reason == "length"
    assert client.post("/v1/completions", json={"prompt": "x", "stop": "END"}).status_code == 200
    assert engine.added[-1][1].stop == ("END",)


def test_models_list_and_lookup(served, name):
    client, _ = served
    listed = oa.ModelList.model_validate(client.get("/v1/models").json())
    assert [m.id for m in listed.data] == [name]
    assert client.get(f"/v1/models/{name}").json()["id"] == name
    missing = client.get("/v1/models/gpt-4")
    assert missing.status_code == 404 and name in missing.json()["error"]["message"]


def test_an_alias_is_served_under_its_own_name(causal, tiny_causal_dir):
    client, _ = make_client(causal, tiny_causal_dir, model_name="smollm2-135m")
    with client:
        assert [m["id"] for m in client.get("/v1/models").json()["data"]] == ["smollm2-135m"]
        assert client.post("/v1/completions", json={"prompt": "hi", "max_tokens": 1}).json()["model"] == "smollm2-135m"


@pytest.mark.parametrize("body, needle", [
    ({"messages": HELLO, "n": 2}, "n=2"),
    ({"messages": HELLO, "temperature": -1}, "temperature"),
    ({"messages": HELLO, "top_p": 1.5}, "top_p"),
    ({"messages": [{"role": "wizard", "content": "hi"}]}, "wizard"),
    ({"messages": HELLO, "max_tokens": 0}, "at least 1"),
    ({"messages": HELLO, "max_tokens": 999_999}, "--max-tokens"),
    ({"messages": HELLO, "logprobs": True}, "logprobs"),
    ({"messages": HELLO, "presence_penalty": 0.5}, "presence_penalty"),
    ({"messages": HELLO, "stop": ["a", "b", "c", "d", "e"]}, "at most 4"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "only text parts"),
    ({"prompt": ""}, "empty"),
    ({"prompt": ["one", "two"]}, "one prompt per request"),
    ({"prompt": [10**9]}, "outside the vocabulary"),
])
def test_bad_requests_are_400_with_a_message_in_both_shapes(served, body, needle):
    client, engine = served
    added = len(engine.added)
    path = "/v1/completions" if "prompt" in body else "/v1/chat/completions"
    r = client.post(path, json=body)
    assert r.status_code == 400, r.text
    assert needle in r.json()["detail"] and needle in r.json()["error"]["message"]
    assert r.json()["error"]["type"] == "invalid_request_error" and r.json()["request_id"]
    assert len(engine.added) == added  # nothing reached the engine


def test_text_that_is_not_valid_unicode_is_400(served):
    client, _ = served
    for path, raw in (("/v1/chat/completions", b'{"messages": [{"role": "user", "content": "\\ud800 lone"}]}'),
                      ("/v1/completions", b'{"prompt": "\\ud800 lone"}')):
        r = client.post(path, content=raw, headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and "not valid Unicode" in r.json()["error"]["message"], r.text


def test_prompt_longer_than_the_context_is_400(served, causal):
    client, _ = served
    context = causal[0].config.max_position_embeddings
    r = client.post("/v1/completions", json={"prompt": list(range(3, 3 + context))})
    assert r.status_code == 400 and f"context of {context} tokens" in r.json()["detail"]
    r = client.post("/v1/completions", json={"prompt": [5] * (context - 2), "max_tokens": 10})
    assert r.status_code == 400 and "shorten the prompt or lower max_tokens" in r.json()["detail"]
    long_text = " ".join(["hello"] * (context * 2))
    r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": long_text}]})
    assert r.status_code == 400 and f"context of {context} tokens" in r.json()["detail"]


def test_schema_errors_are_422_and_keep_openai_shape(served):
    client, _ = served
    r = client.post("/v1/chat/completions", json={"messages": []})
    assert r.status_code == 422 and "messages" in r.json()["message"] and r.json()["error"]["message"]
    r = client.post("/v1/chat/completions", content=b'{"messages": [', headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "OpenAI" in r.json()["message"]


def test_limits_on_prompt_characters_and_body_bytes_are_413(causal):
    client, engine = make_client(causal, max_prompt_chars=20)
    with client:
        r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x" * 21}]})
        assert r.status_code == 413 and "21 characters; the limit is 20" in r.json()["detail"]
        r = client.post("/v1/completions", json={"prompt": "y" * 21})
        assert r.status_code == 413 and "--max-prompt-chars" in r.json()["error"]["message"]
        big = b'{"prompt": "' + b"z" * ServeSettings(max_prompt_chars=20).max_generation_body_bytes + b'"}'
        r = client.post("/v1/completions", content=big, headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and "body too large" in r.json()["detail"]
        assert client.post("/v1/completions", json={"prompt": "y" * 20, "max_tokens": 1}).status_code == 200


def test_chat_on_a_tokenizer_without_a_chat_template_is_400(causal):
    import copy

    plain = copy.deepcopy(causal[1])
    plain.chat_template = None
    client, _ = make_client(causal, tokenizer=plain)
    with client:
        r = client.post("/v1/chat/completions", json={"messages": HELLO})
        assert r.status_code == 400 and "template" in r.json()["detail"]
        assert client_ready(client).get("/v1/model").json()["chat"] is False
        assert client.post("/v1/completions", json={"prompt": "plain text", "max_tokens": 2}).status_code == 200


def test_api_key_guards_the_openai_routes_with_openai_error_shape(causal):
    client, _ = make_client(causal, api_key=KEY)
    with client:
        for method, path in (("post", "/v1/chat/completions"), ("post", "/v1/completions"), ("get", "/v1/models")):
            r = getattr(client, method)(path, **({"json": {"messages": HELLO}} if method == "post" else {}))
            assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error", path
        ok = {"Authorization": f"Bearer {KEY}"}
        assert client.post("/v1/chat/completions", json={"messages": HELLO}, headers=ok).status_code == 200
        assert client.get("/v1/models", headers=ok).status_code == 200 and client.get("/").status_code == 200


def test_routes_follow_the_model_kind(served, tiny_classifier_dir):
    client, _ = served
    for path in ("/v1/predict", "/v1/embed"):
        r = client.post(path, json={"texts": ["a"]})
        assert r.status_code == 400 and "/v1/chat/completions" in r.json()["detail"], path
    from tuneforge.serve.load import load

    with TestClient(create_app(load(str(tiny_classifier_dir)), ServeSettings())) as classifier:
        for method, path in (("post", "/v1/chat/completions"), ("post", "/v1/completions"), ("get", "/v1/models")):
            r = getattr(classifier, method)(path, **({"json": {"messages": HELLO}} if method == "post" else {}))
            assert r.status_code == 400 and "a classifier" in r.json()["detail"] and "/v1/predict" in \
                r.json()["error"]["message"], path
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/chat/completions", "/v1/completions", "/v1/models", "/v1/model"} <= set(paths)
    assert "/v1/predict" not in paths


def test_model_info_describes_the_causal_lm(served, causal):
    info = served[0].get("/v1/model").json()
    assert info["task"] == "text-generation" and info["chat"] is True and info["labels"] == []
    assert info["max_length"] == causal[0].config.max_position_embeddings and "model.safetensors" in info["hashes"]


def _count(text: str, line_start: str) -> float:
    match = re.search(rf"^{re.escape(line_start)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_metrics_count_tokens_first_token_latency_and_decode_batches(served):
    client, _ = served
    before = client.get("/metrics").text
    usage = client.post("/v1/completions", json={"prompt": "count me", "max_tokens": 5}).json()["usage"]
    after = client.get("/metrics").text
    for kind in ("prompt", "completion"):
        line = f'tuneforge_tokens_total{{kind="{kind}"}}'
        assert _count(after, line) - _count(before, line) == usage[f"{kind}_tokens"]
    for family in ("tuneforge_time_to_first_token_seconds", "tuneforge_decode_tokens_per_second"):
        assert _count(after, f"{family}_count") == _count(before, f"{family}_count") + 1
    assert _count(after, "tuneforge_decode_batch_sequences_count") >= _count(
        before, "tuneforge_decode_batch_sequences_count") + 5
    assert 'tuneforge_requests_total{endpoint="/v1/completions",status="200"}' in after


def test_page_is_a_chat_box_served_offline(served):
    page = served[0].get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for needle in ('id="log"', 'id="text"', 'id="send"', 'id="stop"', "v1/chat/completions", "stream: true"):
        assert needle in page.text, needle
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", page.text)

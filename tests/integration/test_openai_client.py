"""The official `openai` Python client, unchanged, against `tuneforge serve`'s app (uvicorn in a thread, the recipe's
loader, the real generation engine) on the tiny causal LM: chat and completions, whole and streamed, usage, stop
strings, max_tokens, errors, auth, and two clients decoding in the same steps."""
from __future__ import annotations

import re
import threading
import urllib.request

import openai
import pytest
from serve_helpers import LiveServer, wait_ready

from tuneforge.serve.app import ServeSettings, create_app

KEY = "sk-test-key"
HELLO = [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": "hello world! how are you?"}]


@pytest.fixture(scope="module")
def server(tiny_causal_dir):
    from tuneforge.recipes.serve import load_predictor

    generator, folder = load_predictor(str(tiny_causal_dir), threads=1)
    with LiveServer(create_app(generator, ServeSettings(model_path=folder, api_key=KEY, max_tokens=64))) as url:
        wait_ready(url)
        yield url, generator


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server[0] + "/v1", api_key=KEY, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def name(client) -> str:
    return client.models.list().data[0].id


def test_models_list_names_the_served_folder(client, tiny_causal_dir):
    models = client.models.list().data
    assert [m.id for m in models] == [tiny_causal_dir.name] and models[0].owned_by == "tuneforge"


def test_chat_whole_and_streamed_agree_with_usage(client, server, name):
    whole = client.chat.completions.create(model=name, messages=HELLO, max_tokens=12, temperature=0)
    choice = whole.choices[0]
    assert whole.object == "chat.completion" and choice.message.role == "assistant"
    assert choice.finish_reason in ("stop", "length") and whole.usage.completion_tokens <= 12
    tokenizer = server[1].tokenizer
    assert whole.usage.prompt_tokens == len(tokenizer.apply_chat_template(HELLO, add_generation_prompt=True,
                                                                          tokenize=True, return_dict=True)["input_ids"])
    assert whole.usage.total_tokens == whole.usage.prompt_tokens + whole.usage.completion_tokens
    pieces, usage, reasons, roles = [], None, [], []
    for chunk in client.chat.completions.create(model=name, messages=HELLO, max_tokens=12, temperature=0,
                                                stream=True, stream_options={"include_usage": True}):
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            pieces.append(c.delta.content or "")
            roles += [c.delta.role] if c.delta.role else []
            reasons += [c.finish_reason] if c.finish_reason else []
    assert roles == ["assistant"] and reasons == [choice.finish_reason]
    assert "".join(pieces) == choice.message.content  # greedy: the same text, token by token
    assert usage.completion_tokens == whole.usage.completion_tokens and usage.prompt_tokens == whole.usage.prompt_tokens


def test_completions_max_tokens_and_stop_strings(client, name):
    base = client.completions.create(model=name, prompt="this phone", max_tokens=16, temperature=0)
    text = base.choices[0].text
    assert base.object == "text_completion" and base.usage.prompt_tokens > 0
    if base.choices[0].finish_reason == "length":
        assert base.usage.completion_tokens == 16
    # a stop string that first occurs a few characters in (the tiny model's greedy text: " small small small...")
    cut = next((i for i in range(3, len(text) - 1) if text[i:i + 2].strip() and text.find(text[i:i + 2]) == i), None)
    assert cut is not None, f"no usable stop string in {text!r}"
    stop = text[cut:cut + 2]
    stopped = client.completions.create(model=name, prompt="this phone", max_tokens=16, temperature=0,
                                        stop=[stop, "never appears 123"])
    assert stopped.choices[0].text == text[:cut] and stopped.choices[0].finish_reason == "stop"
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model=name, prompt="this phone", max_tokens=16, temperature=0, stop=stop, stream=True) if c.choices)
    assert streamed == text[:cut]  # the stop string is never sent, not even its first character


def test_sampling_with_a_seed_repeats(client, name):
    def sample():
        return client.completions.create(model=name, prompt="hello", max_tokens=8, temperature=1.0, top_p=0.9,
                                         seed=123, extra_body={"top_k": 50}).choices[0].text

    assert sample() == sample()


def test_errors_arrive_as_the_clients_exceptions_with_the_message(client, server, name):
    with pytest.raises(openai.BadRequestError, match="n=2"):
        client.chat.completions.create(model=name, messages=HELLO, n=2)
    with pytest.raises(openai.BadRequestError, match="unknown role"):
        client.chat.completions.create(model=name, messages=[{"role": "tool", "content": "x"}])
    with pytest.raises(openai.BadRequestError, match="--max-tokens"):
        client.completions.create(model=name, prompt="hello", max_tokens=65)
    with pytest.raises(openai.BadRequestError, match="temperature"):
        client.completions.create(model=name, prompt="hello", temperature=-0.5)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server[0] + "/v1", api_key="wrong", max_retries=0).models.list()


def test_two_streaming_clients_decode_in_the_same_steps(client, server, name):
    def metric(text: str, line: str) -> float:
        match = re.search(rf"^{re.escape(line)} (\S+)$", text, re.MULTILINE)
        return float(match.group(1)) if match else 0.0

    def scrape() -> str:
        request = urllib.request.Request(server[0] + "/metrics", headers={"Authorization": f"Bearer {KEY}"})
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.read().decode()

    before, start, texts = scrape(), threading.Barrier(2), []

    def run():
        start.wait()
        stream = client.chat.completions.create(model=name, messages=HELLO, max_tokens=48, temperature=0,
                                                stream=True)
        texts.append("".join(c.choices[0].delta.content or "" for c in stream if c.choices))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    after = scrape()
    assert len(texts) == 2 and texts[0] == texts[1]  # batched or not, greedy gives the same text
    steps = metric(after, "tuneforge_decode_batch_sequences_count") - metric(before, "tuneforge_decode_batch_sequences_count")
    alone = metric(after, 'tuneforge_decode_batch_sequences_bucket{le="1.0"}') - \
        metric(before, 'tuneforge_decode_batch_sequences_bucket{le="1.0"}')
    assert steps > alone, "no decode step held both sequences"

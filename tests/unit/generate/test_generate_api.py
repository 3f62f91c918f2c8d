"""`tuneforge.load` on a causal-LM folder: a TextGenerator whose generate / stream / chat agree with each other and
with the engine, and whose bad input is a UserError."""
from __future__ import annotations

import pytest

import tuneforge
from tuneforge.errors import UserError
from tuneforge.generate.api import TextGenerator


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model gains nothing from a second thread; a busy machine makes it cost
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def gen(tiny_causal_dir) -> TextGenerator:
    return tuneforge.load(str(tiny_causal_dir))


def test_load_dispatches_causal_folders(gen, tiny_model):
    assert isinstance(gen, TextGenerator) and gen.has_chat_template and gen.context == 256
    assert not isinstance(tuneforge.load(str(tiny_model)), TextGenerator)  # an encoder keeps its Predictor


def test_generate_stream_and_complete_agree(gen):
    text = gen.generate("the movie was", max_new_tokens=10)
    assert "".join(gen.stream("the movie was", max_new_tokens=10)) == text
    [c] = gen.complete(["the movie was"], max_new_tokens=10)
    assert c.text == text and c.completion_tokens <= 10 and c.finish_reason in ("stop", "length")
    assert gen.generate(["the movie was", "hello"], max_new_tokens=10)[0] == text  # batched: same answer


def test_chat_uses_the_template(gen):
    messages = [{"role": "user", "content": "hello"}]
    reply = gen.chat(messages, max_new_tokens=8)
    templated = gen.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = gen.tokenizer(templated, add_special_tokens=False)["input_ids"]
    assert reply == gen.complete([ids], max_new_tokens=8)[0].text  # token ids pass through as they are
    assert "".join(gen.stream(messages, max_new_tokens=8)) == reply


def test_stream_closed_early_cancels(gen):
    pieces = gen.stream("hello world! how are you today?", max_new_tokens=40, stop=())
    next(pieces, None)
    pieces.close()
    assert gen.engine.active == 0


def test_bad_calls_are_user_errors(gen):
    with pytest.raises(UserError, match="temperature"):
        gen.generate("hi", temperature=-1)
    with pytest.raises(UserError, match="unknown generation setting 'max_tokens'"):
        gen.generate("hi", max_tokens=3)
    with pytest.raises(UserError, match=r"messages\[0\]: unknown role 'bot'"):
        gen.chat([{"role": "bot", "content": "x"}])
    with pytest.raises(UserError, match="empty"):
        gen.generate("")

"""Text side of generation: UTF-8-safe incremental detokenisation (Chinese split into byte tokens), stop strings
(trimmed, held back while they may still begin), settings checks and the prompt / chat errors."""
from __future__ import annotations

import pytest

from tuneforge.errors import UserError
from tuneforge.generate.chat import chat_prompt, prompt_ids
from tuneforge.generate.settings import GenerationSettings, make_settings
from tuneforge.generate.text import Detokenizer, TextTracker, check_stops

CHINESE = "鳄鱼在河里游泳，今天天气很好。Crocodiles swim 😀 ok"


@pytest.fixture(scope="module")
def tokenizer(tiny_causal_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_causal_dir)


def test_deltas_never_split_a_character(tokenizer):
    ids = tokenizer(CHINESE)["input_ids"]
    pieces = [tokenizer.convert_ids_to_tokens(i) for i in ids]
    assert len(ids) > len(CHINESE) // 2 and any(len(tokenizer.decode([i])) == 1 and tokenizer.decode([i]) == "\ufffd"
                                                  for i in ids), pieces  # some characters span several tokens
    detok = Detokenizer(tokenizer, tokenizer("prompt:")["input_ids"])
    deltas = [detok.add(i) for i in ids] + [detok.flush()]
    assert "".join(deltas) == CHINESE
    assert not any("\ufffd" in d for d in deltas)
    assert sum(1 for d in deltas if d) > 10  # it streams, it does not hold everything to the end


def test_stop_string_trimmed_and_held_back(tokenizer):
    ids = tokenizer("你好世界再见 and more")["input_ids"]
    tracker = TextTracker(tokenizer, [], stop=("世界", "xyz"))
    out, stopped = [], False
    for i in ids:
        delta, stopped = tracker.push(i)
        out.append(delta)
        if stopped:
            break
    assert stopped and "".join(out) == "你好"
    # A possible start of a stop string waits; once it is known not to be one, it comes out.
    tracker = TextTracker(tokenizer, [], stop=("abcd",))
    first = [tracker.push(i)[0] for i in tokenizer("xab")["input_ids"]]
    assert "".join(first) == "x"
    rest = [tracker.push(i)[0] for i in tokenizer("e")["input_ids"]]
    assert "".join(first + rest) == "xabe"
    assert tracker.finish() == ("", False)


def test_stop_string_spanning_tokens_and_at_the_end(tokenizer):
    tracker = TextTracker(tokenizer, [], stop=("good and",))
    out = []
    for i in tokenizer("the movie was really good and the food")["input_ids"]:
        delta, stopped = tracker.push(i)
        out.append(delta)
        if stopped:
            break
    assert stopped and "".join(out) == "the movie was really "
    held = TextTracker(tokenizer, [], stop=("zzz",))
    text = "".join(held.push(i)[0] for i in tokenizer("buzz")["input_ids"])
    assert text == "bu" and held.finish() == ("zz", False)  # at the end held text is released


@pytest.mark.parametrize("change, needle", [
    ({"max_new_tokens": 0}, "max_new_tokens"), ({"temperature": -1}, "temperature"), ({"top_p": 0}, "top_p"),
    ({"top_p": 1.5}, "top_p"), ({"top_k": -2}, "top_k"), ({"repetition_penalty": 0}, "repetition_penalty"),
    ({"seed": -1}, "seed"), ({"stop": ("",)}, "stop"), ({"temperatur": 1}, "Did you mean 'temperature'"),
])
def test_bad_settings_are_user_errors(change, needle):
    with pytest.raises(UserError, match=needle):
        make_settings(**change)


def test_make_settings_keeps_base_for_none_and_takes_one_stop_string():
    base = GenerationSettings(max_new_tokens=9, temperature=0.5)
    s = make_settings(base, temperature=None, stop="\n\n", seed=3)
    assert (s.max_new_tokens, s.temperature, s.stop, s.seed) == (9, 0.5, ("\n\n",), 3) and not s.greedy


def test_chat_prompt_and_its_errors(tokenizer):
    text = chat_prompt(tokenizer, [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}])
    assert text.endswith("<|im_start|>assistant\n") and "be brief" in text
    with pytest.raises(UserError, match=r"messages\[1\]: unknown role 'robot'"):
        chat_prompt(tokenizer, [{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}])
    with pytest.raises(UserError, match=r"messages\[0\].*content"):
        chat_prompt(tokenizer, [{"role": "user", "content": 3}])
    with pytest.raises(UserError, match="non-empty list"):
        chat_prompt(tokenizer, [])
    plain = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    plain.chat_template = None
    with pytest.raises(UserError, match="no chat template"):
        chat_prompt(plain, [{"role": "user", "content": "hi"}])


def test_prompt_ids_errors(tokenizer):
    assert prompt_ids(tokenizer, "the movie", 256, 16) == tokenizer("the movie")["input_ids"]
    with pytest.raises(UserError, match="empty"):
        prompt_ids(tokenizer, "   ", 256)
    long = "the movie was really good " * 40
    n = len(tokenizer(long)["input_ids"])
    with pytest.raises(UserError, match=rf"prompt is {n} tokens.*context of 256.*at most 200 tokens"):
        prompt_ids(tokenizer, long, 256, 56)
    with pytest.raises(UserError, match="leaves no room"):
        prompt_ids(tokenizer, "hi", 256, 256)


def test_stop_string_the_tokenizer_cannot_produce(tiny_model, tokenizer):
    from transformers import AutoTokenizer

    uncased = AutoTokenizer.from_pretrained(tiny_model)  # lowercases: "END" can never come out
    with pytest.raises(UserError, match="stop string 'END' can never be generated"):
        check_stops(uncased, ("END",))
    check_stops(uncased, ("end", "\n\n"))
    check_stops(tokenizer, ("END", "鳄鱼", "\n"))  # byte-level BPE writes anything

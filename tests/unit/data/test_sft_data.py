"""SFT data: reading prompt/response and messages rows, chat-template rendering, labels on the answers only."""
from __future__ import annotations

import json

import pytest

from sft_helpers import build_tiny_chat_lm, write_jsonl
from tuneforge.config import DataConfig
from tuneforge.data.sft import (
    IGNORE,
    Chat,
    chat_format,
    encode_chats,
    load_sft_splits,
    prompt_and_reference,
    read_chats,
)
from tuneforge.errors import UserError


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    base = tmp_path_factory.mktemp("sft-data")
    return {"chat": build_tiny_chat_lm(base / "chat"), "plain": build_tiny_chat_lm(base / "plain", chat_template=False)}


def _tokenizer(folder):
    from tuneforge.model.causal import load_causal_tokenizer

    return load_causal_tokenizer(str(folder))


def _text(tokenizer, ids) -> str:
    return tokenizer.decode(ids, skip_special_tokens=False)


MULTI = [{"role": "system", "content": "You help."}, {"role": "user", "content": "hi"},
         {"role": "assistant", "content": "hello there"}, {"role": "user", "content": "外卖到了吗？"},
         {"role": "assistant", "content": "快到了！"}]


def test_multi_turn_labels_cover_every_answer_and_nothing_else(folders):
    tok = _tokenizer(folders["chat"])
    assert chat_format(tok) == "template"
    enc = encode_chats(tok, [Chat(MULTI, 1)], 512)
    ids, labels = enc.input_ids[0], enc.labels[0]
    # the token stream is the chat template's rendering of the whole chat
    assert _text(tok, ids) == tok.apply_chat_template(MULTI, tokenize=False)
    targets = _text(tok, [t for t, y in zip(ids, labels) if y != IGNORE])
    assert targets == "hello there<|im_end|>\n快到了！<|im_end|>\n"  # both answers with their end-of-turn, no prompt
    assert [y for y in labels if y != IGNORE] == [t for t, y in zip(ids, labels) if y != IGNORE]
    # the first answer's context is tokenized exactly as the prompt the model will be asked at inference
    prompt = tok.apply_chat_template(MULTI[:2], tokenize=False, add_generation_prompt=True)
    n = len(tok(prompt, add_special_tokens=False)["input_ids"])
    assert ids[:n] == tok(prompt, add_special_tokens=False)["input_ids"]
    assert all(y == IGNORE for y in labels[:n]) and labels[n] != IGNORE


def test_prompt_and_reference_is_the_last_answer(folders):
    tok = _tokenizer(folders["chat"])
    prompt, reference = prompt_and_reference(tok, MULTI)
    assert reference == "快到了！"
    assert prompt.endswith("外卖到了吗？<|im_end|>\n<|im_start|>assistant\n") and "hello there" in prompt


def test_tokenizer_without_template_gets_the_plain_format(folders):
    tok = _tokenizer(folders["plain"])
    assert chat_format(tok) == "plain"
    chat = Chat([{"role": "user", "content": "Classify: good"}, {"role": "assistant", "content": "positive"}], 1)
    enc = encode_chats(tok, [chat], 512)
    assert _text(tok, enc.input_ids[0]) == "Classify: good\npositive<|im_end|>"
    targets = [t for t, y in zip(enc.input_ids[0], enc.labels[0]) if y != IGNORE]
    assert _text(tok, targets) == "positive<|im_end|>"
    # installed on the tokenizer, so the saved folder renders prompts as training did
    assert tok.apply_chat_template(chat.messages[:1], tokenize=False, add_generation_prompt=True) == "Classify: good\n"


def test_over_long_examples_are_cut_and_counted(folders):
    tok = _tokenizer(folders["chat"])
    long_answer = Chat([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "good " * 60}], 1)
    long_prompt = Chat([{"role": "user", "content": "bad " * 60}, {"role": "assistant", "content": "ok"}], 2)
    short = Chat([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}], 3)
    enc = encode_chats(tok, [long_answer, long_prompt, short], 24)
    assert (enc.truncated, enc.dropped) == (2, 1)  # the long prompt leaves no answer token: left out, counted
    assert enc.rows == [1, 3] and max(enc.lengths) == 24


def test_unknown_role_names_file_row_and_role(tmp_path):
    rows = [{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]},
            {"messages": [{"role": "user", "content": "a"}, {"role": "tool", "content": "b"}]}]
    path = write_jsonl(tmp_path / "chat.jsonl", rows)
    with pytest.raises(UserError) as err:
        read_chats(str(path), DataConfig())
    assert str(path) in str(err.value) and "row 2" in str(err.value) and "'tool'" in str(err.value)


def test_csv_messages_as_json_and_prompt_response_columns(tmp_path):
    import pandas as pd

    chat = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    pd.DataFrame({"messages": [json.dumps(chat)] * 3}).to_csv(tmp_path / "m.csv", index=False)
    assert [c.messages for c in read_chats(str(tmp_path / "m.csv"), DataConfig())] == [chat] * 3
    pd.DataFrame({"q": ["x", "y"], "a": ["1", "2"]}).to_csv(tmp_path / "pr.csv", index=False)
    chats = read_chats(str(tmp_path / "pr.csv"), DataConfig(prompt_column="q", response_column="a"))
    assert chats[1].messages == [{"role": "user", "content": "y"}, {"role": "assistant", "content": "2"}]
    with pytest.raises(UserError, match="no 'messages' column and no 'prompt' column.*--prompt-column"):
        read_chats(str(tmp_path / "pr.csv"), DataConfig())


def test_held_out_splits_are_carved_from_train_with_the_seed(tmp_path):
    rows = [{"prompt": f"p{i}", "response": f"r{i}"} for i in range(40)]
    path = write_jsonl(tmp_path / "t.jsonl", rows)
    splits = load_sft_splits(DataConfig(train=str(path)))
    sizes = {n: len(s.chats) for n, s in splits.items()}
    assert sizes == {"train": 32, "test": 4, "validation": 4}
    seen = [c.row for s in splits.values() for c in s.chats]
    assert sorted(seen) == list(range(1, 41))  # every row in exactly one split
    again = load_sft_splits(DataConfig(train=str(path)))
    assert [c.row for c in again["test"].chats] == [c.row for c in splits["test"].chats]

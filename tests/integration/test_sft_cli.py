"""`tuneforge finetune --task sft` end to end on a tiny chat LM: a LoRA run whose saved adapter reloads and answers
as the run did, an interrupted LoRA run that resumes to the same adapter, a merged run that is a plain model folder
(with the plain prompt format of a tokenizer without chat template), and one-line errors with exit code 2."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import tuneforge.train.loop as loop
from sft_helpers import build_tiny_chat_lm, sentiment_rows, write_jsonl
from tfi_helpers import assert_ok, assert_user_error, read_jsonl, run_cli

SFT = ["--task", "sft", "--train", "train.jsonl", "--validation", "val.jsonl",
       "--set", "data.max_length=128", "--set", "train.max_steps=12", "--set", "train.epochs=10",
       "--set", "train.learning_rate=0.01",
       "--set", "eval.every_steps=4", "--set", "eval.generate_samples=6", "--set", "train.early_stopping_patience=0",
       "--set", "runtime.progress=false", "--set", "runtime.threads=1", "--set", "runtime.device=cpu"]
LORA = ["--lora", "--lora-rank", "4", "--lora-alpha", "8"]


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("sft-cli")
    build_tiny_chat_lm(base / "lm")
    build_tiny_chat_lm(base / "lm-plain", chat_template=False)
    write_jsonl(base / "train.jsonl", sentiment_rows(80, 1))
    write_jsonl(base / "val.jsonl", sentiment_rows(16, 2))
    return base


@pytest.fixture(scope="module")
def lora_run(base) -> Path:
    assert_ok(run_cli(["finetune", *SFT, *LORA, "--model", str(base / "lm"), "--output", "lora"], cwd=base))
    return base / "lora"


def _answers(run: Path) -> tuple[list[dict], int]:
    record = json.loads((run / "report" / "metrics.json").read_text(encoding="utf-8"))
    return record["answers"], record["generation"]["max_new_tokens"]


def _greedy(model, tokenizer, prompt: str, max_new_tokens: int) -> str:
    from tuneforge.data.sft import prompt_and_reference

    text, _ = prompt_and_reference(tokenizer, [{"role": "user", "content": prompt}, {"role": "assistant", "content": ""}])
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()


def test_lora_run_saves_an_adapter_that_reloads_and_answers_as_the_run_did(base, lora_run):
    from transformers import AutoTokenizer

    from tuneforge.model.causal import load_causal_lm
    from tuneforge.model.lora import is_adapter_folder, load_adapter

    final = lora_run / "final"
    assert is_adapter_folder(final) and not (final / "model.safetensors").exists()  # the adapter only
    config = json.loads((final / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str((base / "lm").resolve()) and config["r"] == 4
    manifest = json.loads((final / "tuneforge.json").read_text())
    assert manifest["task"] == "sft" and manifest["family"] == "causal" and manifest["chat_format"] == "template"
    assert manifest["adapter"]["rank"] == 4 and not manifest["adapter"]["merged"]
    assert "<|im_start|>" in (final / "chat_template.jinja").read_text()  # the chat template travels
    summary = json.loads((lora_run / "summary.json").read_text())
    assert summary["steps"] == 12 and {"validation", "test"} <= set(summary["metrics"])
    test = summary["metrics"]["test"]
    assert test["generated"] == 6 and {"exact_match", "rouge_l", "accuracy", "perplexity"} <= set(test)
    model = load_adapter(load_causal_lm(config["base_model_name_or_path"]), final)
    tokenizer = AutoTokenizer.from_pretrained(final)
    answers, max_new = _answers(lora_run)
    for row in answers[:3]:
        assert _greedy(model, tokenizer, row["prompt"], max_new) == row["generation"]
    report = (lora_run / "report" / "report.html").read_text()
    assert "Answers on the test set" in report and "LoRA rank 4" in report


def test_lora_run_learns(lora_run):
    log = read_jsonl(lora_run / "metrics.jsonl")
    val = [r["loss"] for r in log if r.get("split") == "validation"]
    # a random 64-wide model behind frozen tied embeddings learns slowly through rank-4 adapters, but steadily
    assert len(val) == 3 and val[0] > val[1] > val[2] and val[2] < val[0] - 0.1


def test_interrupted_sft_run_resumes_to_the_same_adapter(base, lora_run, monkeypatch):
    from safetensors.torch import load_file

    from tuneforge.config import FinetuneConfig, load_config
    from tuneforge.recipes.finetune import finetune

    real, saved = loop.save_checkpoint, []

    def save_then_interrupt(*args, **kwargs):
        saved.append(real(*args, **kwargs))
        raise KeyboardInterrupt

    overrides = [a for a in SFT[6:] if a != "--set"]
    base_cfg = {"task": "sft", "output": str(base / "resumed"), "model": {"name": str(base / "lm")},
                "data": {"train": str(base / "train.jsonl"), "validation": str(base / "val.jsonl")},
                "lora": {"enabled": True, "rank": 4, "alpha": 8}}
    monkeypatch.setattr(loop, "save_checkpoint", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        finetune(load_config(None, FinetuneConfig, overrides, base_cfg))
    monkeypatch.undo()
    assert len(saved) == 1 and not (base / "resumed" / "final").exists()
    resumed = load_config(base / "resumed" / "config.yaml", FinetuneConfig)
    summary = finetune(resumed, resume=True)
    assert summary.steps == 12
    a = load_file(str(lora_run / "final" / "adapter_model.safetensors"))
    b = load_file(str(base / "resumed" / "final" / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_merged_run_is_a_plain_model_folder_with_the_plain_prompt_format(base):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    proc = run_cli(["finetune", *SFT, *LORA, "--merge-lora", "--model", str(base / "lm-plain"), "--output", "merged",
                    "--set", "eval.generate_samples=3"], cwd=base)
    assert_ok(proc)
    assert "no chat template; using the plain format" in proc.stderr
    final = base / "merged" / "final"
    assert (final / "model.safetensors").exists() and not (final / "adapter_config.json").exists()
    manifest = json.loads((final / "tuneforge.json").read_text())
    assert manifest["chat_format"] == "plain" and manifest["adapter"]["merged"]
    model, tokenizer = AutoModelForCausalLM.from_pretrained(final), AutoTokenizer.from_pretrained(final)
    assert tokenizer.apply_chat_template([{"role": "user", "content": "q"}], tokenize=False,
                                         add_generation_prompt=True) == "q\n"
    assert not any("lora" in name for name, _ in model.named_parameters())
    assert model.config.use_cache  # training ran without the KV cache; generating from final/ uses it
    # the merged weights compute what base + adapter computed in the run: the held-out loss it reported
    from tuneforge.config import DataConfig
    from tuneforge.data.sft import encode_chats, read_chats
    from tuneforge.data.sft_pack import SftBatches
    from tuneforge.evaluate.clm import evaluate_clm

    enc = encode_chats(tokenizer, read_chats(str(base / "val.jsonl"), DataConfig()), 128)
    loss = evaluate_clm(model, SftBatches(enc, tokenizer.pad_token_id, packed=True, capacity=128))["loss"]
    reported = json.loads((base / "merged" / "summary.json").read_text())["metrics"]["validation"]["loss"]
    assert loss == pytest.approx(reported, rel=1e-4)


def test_sft_user_errors_exit_2_with_one_line(base, tiny_model):
    bad = base / "bad.jsonl"
    write_jsonl(bad, [{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]},
                      {"messages": [{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}]}])
    model = ["--model", str(base / "lm")]
    assert_user_error(run_cli(["finetune", "--task", "sft", "--train", "bad.jsonl", *model, "-o", "e1"], cwd=base),
                      "bad.jsonl", "row 2", "'robot'")
    assert_user_error(run_cli(["finetune", *SFT, *model, "--lora", "--lora-targets", "q_proj,nope_proj", "-o", "e2"],
                              cwd=base), "nope_proj", "q_proj")
    assert_user_error(run_cli(["finetune", "--train", "train.jsonl", "--lora", "-o", "e3"], cwd=base), "--task sft")
    assert_user_error(run_cli(["finetune", *SFT, "--prompt-column", "question", *model, "-o", "e4"], cwd=base),
                      "'question'", "--prompt-column")
    assert_user_error(run_cli(["finetune", *SFT, "--model", str(tiny_model), "-o", "e5"], cwd=base),
                      "not a causal language model")
    assert not any((base / f"e{i}" / "final").exists() for i in range(1, 6))

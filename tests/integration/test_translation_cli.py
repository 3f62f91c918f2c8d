"""`tuneforge finetune --task translation` end to end on real Multi30k pairs (the tiny preset, a few steps): the run
folder holds a joint tokenizer, a model that loads in plain transformers and translates as the run did, the
hypotheses, sacreBLEU scores with signatures in summary and report, the BLEU curve; a resumed run ends with the same
weights; bad input is one line with exit code 2."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import tuneforge.train.loop as loop
from tfi_helpers import assert_ok, assert_same_weights, assert_user_error, read_jsonl, run_cli

PAIRS, HELD_OUT = 240, 40
MT = ["--task", "translation", "--train", "train", "--validation", "val", "--test", "test",
      "--source-lang", "en", "--target-lang", "de", "--preset", "tiny", "--beams", "2",
      "--set", "model.vocab_size=400", "--set", "train.max_steps=8", "--set", "eval.every_steps=2",
      "--set", "eval.bleu_samples=10", "--set", "eval.bootstrap_samples=20", "--set", "eval.max_new_tokens=12",
      "--set", "train.batch_tokens=1024", "--set", "runtime.progress=false", "--set", "runtime.threads=1",
      "--set", "runtime.device=cpu"]


@pytest.fixture(scope="module")
def base(tmp_path_factory, shared_data) -> Path:
    base = tmp_path_factory.mktemp("mt-cli")
    m30k = shared_data / "multi30k"
    for name, source, n in (("train", "train", PAIRS), ("val", "val", HELD_OUT), ("test", "test_2016_flickr", HELD_OUT)):
        for lang in ("en", "de"):
            lines = (m30k / f"{source}.{lang}").read_text(encoding="utf-8").split("\n")[:n]
            (base / f"{name}.{lang}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return base


@pytest.fixture(scope="module")
def run(base) -> Path:
    assert_ok(run_cli(["finetune", *MT, "--output", "mt"], cwd=base))
    return base / "mt"


def test_the_run_scores_saves_and_reports_a_translator(base, run):
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from tuneforge.generate.translate import Translator

    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    assert summary["task"] == "translation" and summary["steps"] == 8
    for split in ("validation", "test"):
        m = summary["metrics"][split]
        assert m["sentences"] == HELD_OUT and 0 <= m["bleu"] <= 100 and m["loss"] > 0
        assert m["bleu_signature"].startswith("nrefs:1|bs:20|seed:42|case:mixed") and "tok:13a" in m["bleu_signature"]
        assert m["bleu_ci"][0] <= m["bleu_ci"][1]
    evals = [r for r in read_jsonl(run / "metrics.jsonl") if r.get("split") == "validation"]
    assert [r["step"] for r in evals] == [2, 4, 6, 8] and all("bleu" in r and "train_seconds" in r for r in evals)
    hyps = (run / "translations" / "test.txt").read_text(encoding="utf-8").split("\n")
    assert len(hyps) == HELD_OUT + 1 and hyps[-1] == ""
    manifest = json.loads((run / "final" / "tuneforge.json").read_text(encoding="utf-8"))
    assert manifest["task"] == "translation" and manifest["source_lang"] == "en" and manifest["normalize"] is True
    report = (run / "report" / "report.md").read_text(encoding="utf-8")
    assert "bleu_curve.png" in report and (run / "report" / "bleu_curve.png").stat().st_size > 0
    # final/ is a plain Hugging Face folder, and what it translates is what the run wrote
    model = AutoModelForSeq2SeqLM.from_pretrained(run / "final")
    tok = AutoTokenizer.from_pretrained(run / "final")
    assert model.config.is_encoder_decoder and tok.decode(tok("Zwei Männer.")["input_ids"],
                                                          skip_special_tokens=True) == "Zwei Männer."
    sources = (base / "test.en").read_text(encoding="utf-8").split("\n")[:5]
    again = Translator.load(str(run / "final")).translate(sources, beams=2, max_new_tokens=12)
    assert again == hyps[:5]
    with torch.inference_mode():
        ids = tok(sources[:1], return_tensors="pt")
        out = model.generate(**ids, num_beams=2, max_new_tokens=12, early_stopping=True)
    assert tok.decode(out[0], skip_special_tokens=True) == hyps[0]


def test_an_interrupted_run_resumes_to_the_same_model(base, run, monkeypatch):
    real, saved = loop.save_checkpoint, []

    def save_then_interrupt(*args, **kwargs):
        saved.append(real(*args, **kwargs))
        if len(saved) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "save_checkpoint", save_then_interrupt)
    interrupted = run_cli(["finetune", *MT, "--output", "again"], cwd=base)
    assert interrupted.returncode != 0 and not (base / "again" / "final").exists()
    monkeypatch.undo()
    resumed = run_cli(["finetune", "--output", "again", "--resume"], cwd=base)
    assert_ok(resumed)
    assert "resuming from" in resumed.stderr
    assert_same_weights(run / "final", base / "again" / "final")


@pytest.mark.parametrize("change, needles", [
    ("misaligned", ("train.en has 240 lines but ", "train.de has 239", "line-aligned")),
    ("encoder", ("not an encoder-decoder",)),
    ("beams", ("beams",)),
])
def test_bad_input_is_one_line_with_exit_code_2(base, tiny_model, tmp_path, change, needles):
    args = list(MT)
    if change == "misaligned":
        for lang, n in (("en", PAIRS), ("de", PAIRS - 1)):
            lines = (base / f"train.{lang}").read_text(encoding="utf-8").split("\n")[:n]
            (tmp_path / f"train.{lang}").write_text("\n".join(lines) + "\n", encoding="utf-8")
        args[args.index("train")] = str(tmp_path / "train")
    elif change == "encoder":
        args.remove("--preset"), args.remove("tiny")
        args += ["--model", str(tiny_model)]
    else:
        args[args.index("--beams") + 1] = "0"
    assert_user_error(run_cli(["finetune", *args, "--output", str(tmp_path / "run")], cwd=base), *needles)

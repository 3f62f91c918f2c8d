"""The memory levers: train records carry the process's RSS (`rss_mb`); `trim_memory` hands freed heap pages back
after every evaluation (never with the lever off) and when RSS grew past its slack; `split_long_batches` runs a
long batch as micro-batches with the same gradient; the tokenizer is parked during training; the optimizer's
moments go after the loop; the checksum and oneDNN's kernel cache hold no large copies."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

import tuneforge.train.loop as loop
from tuneforge.train import runtime


def tiny_fit(tmp_path, evaluate, lr: float = 1e-3, **loop_settings):
    """Six steps of a tiny BERT classifier on 24 random rows, evaluating every 2 steps: (model, final loop state)."""
    from tuneforge.config.schema import RuntimeConfig
    from tuneforge.data.encode import Encoded, LengthGroupedBatches
    from tuneforge.train.objectives import make_objective
    from tuneforge.train.optim import ProgressSchedule, build_optimizer

    accelerator = runtime.make_accelerator(RuntimeConfig(device="cpu", threads=1, levers="all,-reuse_memory"))
    gen = torch.Generator().manual_seed(2)
    rows = [torch.randint(5, 120, (int(n),), generator=gen).tolist() for n in torch.randint(3, 9, (24,), generator=gen)]
    data = LengthGroupedBatches(Encoded(rows, torch.randint(0, 3, (24,), generator=gen).numpy()), pad_id=0)
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=128, hidden_size=32, num_hidden_layers=2,
                                                     num_attention_heads=2, intermediate_size=64, num_labels=3))
    optimizer = build_optimizer(model, lr, 0.0)
    scheduler = ProgressSchedule(optimizer, 0.0)
    model, optimizer = accelerator.prepare(model, optimizer)
    cfg = loop.LoopConfig(run_dir=tmp_path, total_steps=6, batch_size=4, eval_every=2, log_every=2, progress=False,
                          **loop_settings)
    state = loop.fit(accelerator, model, optimizer, scheduler, data, make_objective("classification", multi_label=False),
                     evaluate, cfg)
    return model, state


def _fit(tmp_path, trim: bool) -> list[dict]:
    tiny_fit(tmp_path, lambda m: {"accuracy": 0.5}, trim_memory=trim)
    return [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("trim", [True, False])
def test_trim_after_each_evaluation_and_rss_in_train_records(tmp_path, monkeypatch, trim):
    calls = []
    monkeypatch.setattr(runtime, "trim_freed_memory", lambda: calls.append(1) or True)
    records = _fit(tmp_path, trim)
    train = [r for r in records if "split" not in r]
    evaluations = [r for r in records if r.get("split") == "validation"]
    assert len(evaluations) == 3 and len(calls) == (3 if trim else 0)
    assert train and all(r["rss_mb"] > 10 for r in train)  # megabytes of a live Python process


def test_trim_and_rss_helpers():
    assert isinstance(runtime.trim_freed_memory(), bool)
    assert runtime.rss_mb() > 10


def test_heap_trimmer_trims_when_rss_grows_past_its_slack(monkeypatch):
    readings = iter([1000.0, 1500.0, 2100.0, 1100.0, 1600.0, 2200.0, 3200.0, 1200.0, 900.0])  # MB, in read order
    monkeypatch.setattr(runtime, "rss_mb", lambda: next(readings))
    calls = []
    monkeypatch.setattr(runtime, "trim_freed_memory", lambda: calls.append(1) or True)
    trimmer = runtime.HeapTrimmer(True, slack_mb=1024)  # floor 1000
    trimmer.after_step()  # 1500: within the slack
    assert calls == []
    trimmer.after_step()  # 2100 > 1000 + 1024: trim (RSS after it: 1100); the floor is the high-water mark, 2100
    assert calls == [1] and trimmer.floor == 2100.0
    trimmer.after_step()  # 1600: a step refaulting its working set does not trim again...
    trimmer.after_step()  # ...nor 2200
    assert calls == [1]
    trimmer.after_step()  # 3200 > 2100 + 1024: growth beyond the working set trims (RSS after: 1200)
    assert len(calls) == 2 and trimmer.trims == 2 and trimmer.floor == 3200.0
    trimmer.trim()  # after an evaluation: the floor is where the trim left RSS
    assert len(calls) == 3 and trimmer.floor == 900.0
    off = runtime.HeapTrimmer(False)
    off.after_step()
    off.trim()
    assert len(calls) == 3


def _tiny_classifier():
    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(vocab_size=128, hidden_size=32, num_hidden_layers=2,
                                                     num_attention_heads=2, intermediate_size=64, num_labels=3,
                                                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))


@pytest.mark.parametrize("weights", [None, [0.2, 1.0, 3.0]])
@pytest.mark.parametrize("budget, parts", [(None, 1), (40, 4), (1, 8)])  # longest row 14: 40 → 2 rows a forward
def test_split_long_batches_gives_the_whole_batch_gradient(budget, parts, weights):
    from accelerate import Accelerator

    from tuneforge.data.encode import Encoded, LengthGroupedBatches
    from tuneforge.train.objectives import make_objective

    gen = torch.Generator().manual_seed(3)
    rows = [torch.randint(5, 120, (int(n),), generator=gen).tolist() for n in (12, 3, 9, 5, 14, 4, 7, 2)]
    labels = torch.randint(0, 3, (8,), generator=gen).numpy()
    index = np.arange(8)
    grads = {}
    for micro in (None, budget):
        data = LengthGroupedBatches(Encoded(rows, labels), pad_id=0, micro_tokens=micro,
                                    class_weights=None if weights is None else torch.tensor(weights))
        seen = []
        original = data.collate
        data.collate = lambda part, epoch, original=original: seen.append(len(part)) or original(part, epoch)
        model = _tiny_classifier()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # the step leaves the weights: compare gradients
        optimizer.zero_grad = lambda set_to_none=True: None  # keep .grad after the step
        cfg = loop.LoopConfig(run_dir=None, total_steps=1, batch_size=8, max_grad_norm=None, progress=False)
        objective = make_objective("classification", multi_label=False,
                                   weights=None if weights is None else torch.tensor(weights))
        loop._train_step(Accelerator(cpu=True), model, optimizer, objective, data, index, 0, cfg)
        grads[micro] = ([p.grad.clone() for p in model.parameters() if p.grad is not None], seen)
    (whole, seen_whole), (split, seen_split) = grads[None], grads[budget]
    assert seen_whole == [8] and len(seen_split) == parts and sum(seen_split) == 8
    for a, b in zip(whole, split):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_split_long_batches_lever_sets_the_budget_on_cpu(tmp_path):
    from tuneforge.config import FinetuneConfig
    from tuneforge.data.encode import LONG_BATCH_TOKENS, Encoded
    from tuneforge.train.session import Session

    data = Encoded([[1, 2, 3]], None)
    for levers, budget in (("all", LONG_BATCH_TOKENS), ("all,-split_long_batches", None)):
        cfg = FinetuneConfig.model_validate({"output": str(tmp_path / levers.replace(",", "_")),
                                             "runtime": {"device": "cpu", "levers": levers, "progress": False}})
        assert Session(cfg).text_batches(data, 0).micro_tokens == budget


def test_parked_tokenizer_comes_back_with_its_added_tokens(tiny_model):
    from tuneforge.model.build import ParkedTokenizer, load_tokenizer

    tokenizer = load_tokenizer(str(tiny_model))
    tokenizer.add_tokens(["外卖", "好吃"])
    before = tokenizer("外卖 好吃 good")["input_ids"]
    parked = ParkedTokenizer(tokenizer)
    back = parked.load()
    assert back is not tokenizer and len(back) == len(tokenizer)
    assert back("外卖 好吃 good")["input_ids"] == before


def test_parked_tokenizer_saves_the_files_the_tokenizer_saves(tiny_model, tmp_path):
    from tuneforge.model.build import ParkedTokenizer, load_tokenizer

    tokenizer = load_tokenizer(str(tiny_model))
    tokenizer.add_tokens(["外卖"])
    tokenizer.save_pretrained(tmp_path / "direct")
    (tmp_path / "parked").mkdir()
    ParkedTokenizer(tokenizer).save_pretrained(tmp_path / "parked")
    direct = {p.name: p.read_bytes() for p in (tmp_path / "direct").iterdir()}
    assert direct and {p.name: p.read_bytes() for p in (tmp_path / "parked").iterdir()} == direct


def test_weights_checksum_is_the_float64_sum():
    from tuneforge.recipes.finetune import weights_checksum

    model = _tiny_classifier()
    expected = sum(p.detach().double().sum().item() for p in model.parameters())
    assert weights_checksum(model) == pytest.approx(expected, rel=1e-12, abs=1e-9)


def test_release_optimizer_state_drops_the_moments():
    from tuneforge.train.optim import build_optimizer, release_optimizer_state

    model = _tiny_classifier()
    optimizer = build_optimizer(model, 1e-3, 0.0)
    model(input_ids=torch.tensor([[5, 6, 7]]), labels=torch.tensor([1])).loss.backward()
    optimizer.step()
    assert len(optimizer.state) > 0
    release_optimizer_state(optimizer)
    assert len(optimizer.state) == 0


def test_kernel_cache_bound_leaves_a_users_setting(monkeypatch):
    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    runtime.bound_kernel_cache()
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == str(runtime.KERNEL_CACHE)
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "512")
    runtime.bound_kernel_cache()
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "512"


def test_deeper_encoders_get_smaller_micro_batches(tmp_path):
    from tuneforge.config import FinetuneConfig
    from tuneforge.data.encode import LONG_BATCH_TOKENS, Encoded, micro_batch_tokens
    from tuneforge.train.session import Session

    assert [micro_batch_tokens(n) for n in (None, 2, 6, 12, 24, 100)] == [LONG_BATCH_TOKENS] * 3 + [512, 256, 128]
    cfg = FinetuneConfig.model_validate({"output": str(tmp_path), "runtime": {"device": "cpu", "progress": False}})
    assert Session(cfg).text_batches(Encoded([[1, 2, 3]], None), 0, layers=12).micro_tokens == 512


@pytest.mark.parametrize("keep_last", [False, True])
def test_keep_last_ends_with_the_last_evaluation_whatever_it_scored(tmp_path, keep_last):
    """`keep_last` (train.contrastive runs): the newest evaluated weights, not the best-scoring ones."""
    scores, weights = iter([0.9, 0.5, 0.1]), []  # validation only falls: "best" is the first evaluation

    def evaluate(m):
        weights.append(m.classifier.weight.detach().clone())
        return {"accuracy": next(scores)}

    model, state = tiny_fit(tmp_path, evaluate, lr=1e-2, keep_last=keep_last)
    assert state.best_step == (6 if keep_last else 2)
    assert torch.equal(model.classifier.weight, weights[-1] if keep_last else weights[0])
    assert not torch.equal(weights[0], weights[-1])

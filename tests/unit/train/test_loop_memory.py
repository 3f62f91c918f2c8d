"""The loop's memory bookkeeping: train records carry the process's RSS (`rss_mb`), and the `trim_memory` lever
hands freed heap pages back once after every evaluation (never with the lever off)."""
from __future__ import annotations

import json

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

import tuneforge.train.loop as loop
from tuneforge.train import runtime


def _fit(tmp_path, trim: bool) -> list[dict]:
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
    optimizer = build_optimizer(model, 1e-3, 0.0)
    scheduler = ProgressSchedule(optimizer, 0.0)
    model, optimizer = accelerator.prepare(model, optimizer)
    cfg = loop.LoopConfig(run_dir=tmp_path, total_steps=6, batch_size=4, eval_every=2, log_every=2, progress=False,
                          trim_memory=trim)
    loop.fit(accelerator, model, optimizer, scheduler, data, make_objective("classification", multi_label=False),
             lambda m: {"accuracy": 0.5}, cfg)
    return [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("trim", [True, False])
def test_trim_after_each_evaluation_and_rss_in_train_records(tmp_path, monkeypatch, trim):
    calls = []
    monkeypatch.setattr(loop, "trim_freed_memory", lambda: calls.append(1) or True)
    records = _fit(tmp_path, trim)
    train = [r for r in records if "split" not in r]
    evaluations = [r for r in records if r.get("split") == "validation"]
    assert len(evaluations) == 3 and len(calls) == (3 if trim else 0)
    assert train and all(r["rss_mb"] > 10 for r in train)  # megabytes of a live Python process


def test_trim_and_rss_helpers():
    assert isinstance(runtime.trim_freed_memory(), bool)
    assert runtime.rss_mb() > 10

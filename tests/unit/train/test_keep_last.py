"""`keep_last`: the loop ends with the newest evaluated weights, not the best-scoring ones (train.contrastive runs)."""
from __future__ import annotations

import pytest
import torch


@pytest.mark.parametrize("keep_last", [False, True])
def test_keep_last_ends_with_the_last_evaluation_whatever_it_scored(tmp_path, keep_last):
    from transformers import BertConfig, BertForSequenceClassification

    from tuneforge.config.schema import RuntimeConfig
    from tuneforge.data.encode import Encoded, LengthGroupedBatches
    from tuneforge.train.loop import LoopConfig, fit
    from tuneforge.train.objectives import make_objective
    from tuneforge.train.optim import ProgressSchedule, build_optimizer
    from tuneforge.train.runtime import make_accelerator

    accelerator = make_accelerator(RuntimeConfig(device="cpu", threads=1, levers="all,-reuse_memory"))
    gen = torch.Generator().manual_seed(2)
    rows = [torch.randint(5, 120, (int(n),), generator=gen).tolist() for n in torch.randint(3, 9, (24,), generator=gen)]
    data = LengthGroupedBatches(Encoded(rows, torch.randint(0, 3, (24,), generator=gen).numpy()), pad_id=0)
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=128, hidden_size=32, num_hidden_layers=2,
                                                     num_attention_heads=2, intermediate_size=64, num_labels=3))
    optimizer = build_optimizer(model, 1e-2, 0.0)
    model, optimizer = accelerator.prepare(model, optimizer)
    scores, weights = iter([0.9, 0.5, 0.1]), []  # validation only falls: "best" is the first evaluation

    def evaluate(m):
        weights.append(m.classifier.weight.detach().clone())
        return {"accuracy": next(scores)}

    cfg = LoopConfig(run_dir=tmp_path, total_steps=6, batch_size=4, eval_every=2, progress=False, keep_last=keep_last)
    state = fit(accelerator, model, optimizer, ProgressSchedule(optimizer, 0.0), data,
                make_objective("classification", multi_label=False), evaluate, cfg)
    assert state.best_step == (6 if keep_last else 2)
    assert torch.equal(model.classifier.weight, weights[-1] if keep_last else weights[0])
    assert not torch.equal(weights[0], weights[-1])

"""Gradient accumulation gives the optimizer step of one large batch: by rows for row-level losses, by answer tokens
for SFT's token-level loss (micro-batches with different answer counts), and SFT splits CPU batches by itself."""
from __future__ import annotations


import numpy as np
import pytest
import torch
from accelerate import Accelerator

from tuneforge.data.sft import SftEncoded
from tuneforge.data.sft_pack import SftBatches
from tuneforge.model.loss import IGNORE
from tuneforge.train.loop import LoopConfig, _train_step
from tuneforge.train.objectives import make_objective


def _tiny_lm():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                        num_key_value_heads=2, intermediate_size=64, max_position_embeddings=64))


def _data() -> SftBatches:
    """Four examples whose answers differ a lot in length (1 vs 12 target tokens), one per row."""
    rng = np.random.default_rng(0)
    ids, labels = [], []
    for prompt, answer in ((6, 1), (3, 12), (8, 2), (2, 10)):
        tokens = rng.integers(3, 50, prompt + answer).tolist()
        ids.append(tokens)
        labels.append([IGNORE] * prompt + tokens[prompt:])
    return SftBatches(SftEncoded(ids, labels, list(range(4))), pad_id=0, packed=False, capacity=32, grouped=False)


def _step(accum: int, weighted: bool):
    model = _tiny_lm()
    data = _data()
    if not weighted:  # the row-weighted rule (what every row-level loss gets)
        data.loss_weight = None
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    cfg = LoopConfig(run_dir=None, total_steps=1, batch_size=4, grad_accum=accum, max_grad_norm=None)
    _train_step(Accelerator(cpu=True), model, optimizer, make_objective("sft"), data, np.arange(4), 0, cfg)
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_token_weighted_accumulation_equals_one_large_batch():
    whole = _step(1, weighted=True)
    assert torch.allclose(_step(2, weighted=True), whole, atol=1e-6)
    assert torch.allclose(_step(4, weighted=True), whole, atol=1e-6)
    # Weighing by rows instead would move the weights elsewhere: the test would catch a loop that forgot the tokens.
    assert not torch.allclose(_step(4, weighted=False), whole, atol=1e-4)


def test_loss_weight_counts_next_token_targets():
    batch = _data().collate(np.arange(4), 0)
    assert SftBatches.loss_weight(batch) == 1 + 12 + 2 + 10


@pytest.mark.parametrize("device,set_accum,expected", [("cpu", False, 4), ("cuda", False, 1), ("cpu", True, 1)])
def test_sft_splits_cpu_batches_into_micro_batches(device, set_accum, expected):
    from tuneforge.config import FinetuneConfig, load_config
    from tuneforge.recipes.sft import micro_batching, sft_defaults

    overrides = ["task=sft", "data.train=x.jsonl"] + (["train.grad_accum_steps=1"] if set_accum else [])
    cfg, _ = sft_defaults(load_config(None, FinetuneConfig, overrides))
    cfg, why = micro_batching(cfg, device, world=1)
    assert cfg.train.grad_accum_steps == expected
    assert ("train.grad_accum_steps" in why) == (expected > 1)
    if expected > 1:  # 8 rows of 512 tokens → 4 micro-batches of 2 rows (1,024 tokens)
        assert "2 row(s) × 512 tokens" in why["train.grad_accum_steps"]

"""Sentence pooling over hidden states."""
from __future__ import annotations

import pytest
import torch

from conftest import fp_tolerance
from tuneforge.model.pooling import pool


def _states(layers=5, batch=2, seq=6, hidden=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(batch, seq, hidden, generator=g) for _ in range(layers))


def test_mean_ignores_padded_positions():
    states = _states()
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]])
    out = pool(states, mask, "mean")
    assert out.shape == (2, 8)
    tol = fp_tolerance(torch.float32, 6)  # a masked sum over 6 positions vs mean(): the same sum in another order
    atol = tol * states[-1].abs().max().item()
    assert torch.allclose(out[0], states[-1][0, :3].mean(0), atol=atol, rtol=tol)
    assert torch.allclose(out[1], states[-1][1].mean(0), atol=atol, rtol=tol)
    garbage = tuple(s.clone() for s in states)
    garbage[-1][0, 3:] = 1e6  # changing padded positions must not change the result
    assert torch.equal(pool(garbage, mask, "mean"), out)  # exact: padded terms are times 0, the very same sum


def test_cls_picks_position_zero():
    states = _states()
    mask = torch.ones(2, 6, dtype=torch.long)
    out = pool(states, mask, "cls")
    assert torch.equal(out, states[-1][:, 0])


def test_last4_concatenates_last_four_layers():
    states = _states(layers=7)
    mask = torch.tensor([[1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0]])
    out = pool(states, mask, "last4")
    assert out.shape == (2, 4 * 8)
    expected = torch.cat([pool((s,), mask, "mean") for s in states[-4:]], dim=-1)
    assert torch.equal(out, expected)  # exact: the same masked mean of the same tensors
    assert torch.equal(out[:, -8:], pool(states, mask, "mean"))  # last block is the last layer


def test_unknown_pooling():
    with pytest.raises(ValueError, match="unknown pooling"):
        pool(_states(), torch.ones(2, 6), "max")


def test_mean_same_vector_alone_and_padded_with_real_model(tiny_model):
    from tuneforge.model.build import load_encoder, load_tokenizer

    tok, model = load_tokenizer(str(tiny_model)), load_encoder(str(tiny_model))
    assert not model.training
    texts = ["good movie", "the food was really very nice and the staff was happy"]
    with torch.no_grad():
        alone = tok(texts[:1], return_tensors="pt")
        a = pool(model(**alone, output_hidden_states=True).hidden_states, alone["attention_mask"], "mean")
        batch = tok(texts, return_tensors="pt", padding=True)
        assert batch["attention_mask"][0].sum() < batch["attention_mask"].shape[1]  # really padded
        hidden = model(**batch, output_hidden_states=True).hidden_states
        b = pool(hidden, batch["attention_mask"], "mean")
    # The same math on another padded length: 2 layers over `seq` keys, 32 hidden, 64 FFN, then the mean over seq.
    seq = batch["attention_mask"].shape[1]
    tol = fp_tolerance(torch.float32, 2 * (seq + 32 + 64) + seq)
    assert torch.allclose(a[0], b[0], atol=tol * hidden[-1].abs().max().item(), rtol=tol)
    assert not torch.allclose(b[0], b[1], atol=1e-3)  # not a rounding bound: two texts' vectors differ (behavioural)

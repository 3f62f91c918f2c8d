"""FastDropout and the attention function with the same mask: nn.Dropout's distribution and scaling from a cheaper
random source, reproducible by seed; SDPA's attention otherwise."""
import json

import pytest
import torch
from transformers import (
    AutoModelForSequenceClassification,
    BertConfig,
    BertForSequenceClassification,
)
from transformers.integrations.sdpa_attention import sdpa_attention_forward

import tuneforge.model.dropout as dropout_module
from conftest import fp_tolerance
from tuneforge.model.dropout import (
    ATTENTION,
    FastDropout,
    fast_dropout_attention,
    use_fast_dropout,
)


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_drop_rate_and_scaling_match_nn_dropout(p):
    torch.manual_seed(0)
    y = FastDropout(p).train()(torch.ones(1000, 1000))
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - p) < 5 * (p * (1 - p) / 1e6) ** 0.5  # 5 standard errors over a million draws
    tol = fp_tolerance(torch.float32, 1)  # one scaling by 1 / (1 - p), in fp32
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / (1 - p)), rtol=tol, atol=0)


def test_masks_follow_torch_seed_and_differ_between_calls():
    layer = FastDropout(0.3).train()
    x = torch.ones(64, 64)
    torch.manual_seed(7)
    a, b = layer(x), layer(x)
    torch.manual_seed(7)
    assert torch.equal(layer(x), a)
    assert not torch.equal(a, b)


def test_gradient_uses_the_forward_mask():
    torch.manual_seed(1)
    x = torch.randn(32, 48, requires_grad=True)
    y = FastDropout(0.2).train()(x)
    y.sum().backward()
    kept = y != 0
    assert torch.allclose(x.grad[kept], torch.full_like(x.grad[kept], 1 / 0.8), rtol=fp_tolerance(torch.float32, 1),
                          atol=0)  # one scaling by 1 / (1 - p), in fp32
    assert torch.all(x.grad[~kept] == 0)


def test_identity_in_eval_and_keeps_dtype():
    layer = FastDropout(0.1)
    x = torch.randn(8, 8)
    assert torch.equal(layer.eval()(x), x)
    assert layer.train()(x.bfloat16()).dtype == torch.bfloat16


def test_swaps_every_dropout_and_leaves_weights_alone():
    config = BertConfig(vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, num_labels=2)
    model = BertForSequenceClassification(config).eval()
    model.set_attn_implementation("eager")  # attention is left alone unless it is sdpa
    plain = sum(type(m) is torch.nn.Dropout for m in model.modules())
    keys = list(model.state_dict())
    ids = torch.randint(5, 300, (3, 9))
    before = model(input_ids=ids).logits
    assert use_fast_dropout(model) == plain > 0
    assert not any(type(m) is torch.nn.Dropout for m in model.modules())
    assert list(model.state_dict()) == keys
    assert torch.equal(model(input_ids=ids).logits, before)
    assert model.config._attn_implementation == "eager"


def _qkv_mask(batch=3, heads=2, length=7, dim=8):
    torch.manual_seed(3)
    q, k, v = (torch.randn(batch, heads, length, dim, requires_grad=True) for _ in range(3))
    lengths = torch.tensor([length, 4, 1])
    keep = torch.arange(length)[None, :] < lengths[:, None]  # padding on the right
    mask = keep[:, None, None, :].expand(batch, 1, length, length)  # sdpa's bool mask: True = attend
    return q, k, v, mask


class _Module(torch.nn.Module):
    is_causal = False


def test_attention_math_equals_sdpa_with_an_all_keep_mask(monkeypatch):
    """Our attention (all-keep dropout mask) and SDPA both within fp32 rounding of a float64 reference."""
    q, k, v, mask = _qkv_mask()
    module = _Module().train()
    monkeypatch.setattr(dropout_module, "keep_mask", lambda shape, p, dtype: torch.ones(shape, dtype=dtype))
    ours, _ = fast_dropout_attention(module, q, k, v, mask, dropout=0.1, scaling=0.3)
    grads = torch.autograd.grad(ours.square().sum(), (q, k, v))
    q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
    ref, _ = sdpa_attention_forward(module, q64, k64, v64, mask, dropout=0.0, scaling=0.3)
    ref_grads = torch.autograd.grad(ref.square().sum(), (q64, k64, v64))
    assert ours.shape == ref.shape == (3, 7, 2, 8)
    # forward: softmax over 7 keys, then 7 products per output; backward also sums over the 8 head dims
    tol = fp_tolerance(torch.float32, 7 * 8)
    torch.testing.assert_close(ours.double(), ref, atol=tol, rtol=tol)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a.double(), b, atol=tol * b.abs().max().item(), rtol=tol)


def test_attention_dropout_drops_probabilities_at_rate_p_and_rescales():
    torch.manual_seed(0)
    batch, heads, length = 8, 4, 64
    q, k = torch.randn(batch, heads, length, 16), torch.randn(batch, heads, length, 16)
    v = torch.eye(length).expand(batch, heads, length, length)  # output = the (dropped) attention probabilities
    probs = torch.softmax(q @ k.transpose(-1, -2) * 0.25, dim=-1)
    out, _ = fast_dropout_attention(_Module().train(), q, k, v, None, dropout=0.25, scaling=0.25)
    out = out.transpose(1, 2)
    dropped = (out == 0).float().mean().item()
    assert abs(dropped - 0.25) < 5 * (0.25 * 0.75 / out.numel()) ** 0.5
    kept = out != 0
    tol = fp_tolerance(torch.float32, 16 + 64)  # scores over 16 dims, softmax over 64 keys (the identity adds zeros)
    torch.testing.assert_close(out[kept], probs[kept] / 0.75, rtol=tol, atol=tol * (probs / 0.75).max().item())


def test_attention_delegates_to_sdpa_in_eval_and_without_dropout():
    q, k, v, mask = _qkv_mask()
    for module, p in ((_Module().eval(), 0.1), (_Module().train(), 0.0)):
        torch.manual_seed(1)  # (sdpa draws its own dropout when handed p > 0, whatever the module's mode)
        ours, _ = fast_dropout_attention(module, q, k, v, mask, dropout=p)
        torch.manual_seed(1)
        ref, _ = sdpa_attention_forward(module, q, k, v, mask, dropout=p)
        assert torch.equal(ours, ref)


def test_model_on_sdpa_trains_with_it_evaluates_the_same_and_saves_plain_config(tmp_path):
    config = BertConfig(vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, num_labels=2, attn_implementation="sdpa")
    torch.manual_seed(0)
    model = BertForSequenceClassification(config).eval()
    ids = torch.randint(5, 300, (4, 9))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    before = model(input_ids=ids, attention_mask=mask).logits
    use_fast_dropout(model)
    assert model.config._attn_implementation == ATTENTION
    assert torch.equal(model(input_ids=ids, attention_mask=mask).logits, before)  # evaluation: sdpa itself
    model.train()
    torch.manual_seed(5)
    a = model(input_ids=ids, attention_mask=mask).logits
    torch.manual_seed(5)
    assert torch.equal(model(input_ids=ids, attention_mask=mask).logits, a)  # the seed reproduces every mask
    assert not torch.allclose(a, before)  # not a rounding bound: dropout on changes the logits (behavioural)
    a.sum().backward()
    assert model.bert.encoder.layer[0].attention.self.query.weight.grad.abs().sum() > 0
    model.save_pretrained(tmp_path)
    assert ATTENTION not in (tmp_path / "config.json").read_text()
    again = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert again.config._attn_implementation == "sdpa"
    assert torch.equal(again(input_ids=ids, attention_mask=mask).logits, before)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "bert"

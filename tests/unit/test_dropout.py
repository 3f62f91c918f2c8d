"""FastDropout: nn.Dropout's distribution and scaling from a cheaper random source, reproducible by seed."""
import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from tuneforge.model.dropout import FastDropout, use_fast_dropout


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_drop_rate_and_scaling_match_nn_dropout(p):
    torch.manual_seed(0)
    y = FastDropout(p).train()(torch.ones(1000, 1000))
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - p) < 5 * (p * (1 - p) / 1e6) ** 0.5  # 5 standard errors over a million draws
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / (1 - p)))


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
    assert torch.allclose(x.grad[kept], torch.full_like(x.grad[kept], 1 / 0.8))
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
    plain = sum(type(m) is torch.nn.Dropout for m in model.modules())
    keys = list(model.state_dict())
    ids = torch.randint(5, 300, (3, 9))
    before = model(input_ids=ids).logits
    assert use_fast_dropout(model) == plain > 0
    assert not any(type(m) is torch.nn.Dropout for m in model.modules())
    assert list(model.state_dict()) == keys
    assert torch.equal(model(input_ids=ids).logits, before)

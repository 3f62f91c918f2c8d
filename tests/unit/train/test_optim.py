"""Optimizer groups and the warm-up/decay schedule."""
from __future__ import annotations

import pytest
import torch

from conftest import fp_tolerance
from tuneforge.train.optim import ProgressSchedule, build_optimizer


class _Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(10, 4)
        self.lin = torch.nn.Linear(4, 4)
        self.norm = torch.nn.LayerNorm(4)
        self.head = torch.nn.Linear(4, 2)
        self.frozen = torch.nn.Linear(4, 4)
        self.frozen.requires_grad_(False)


def test_no_decay_on_biases_and_layernorm():
    model = _Tiny()
    opt = build_optimizer(model, lr=1e-3, weight_decay=0.05)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    ids = lambda ps: {id(p) for p in ps}  # noqa: E731
    assert ids(decay["params"]) == ids([model.emb.weight, model.lin.weight, model.head.weight])
    assert ids(no_decay["params"]) == ids([model.lin.bias, model.norm.weight, model.norm.bias, model.head.bias])
    assert all(g["lr"] == 1e-3 for g in opt.param_groups)
    frozen = ids(model.frozen.parameters())
    assert not frozen & (ids(decay["params"]) | ids(no_decay["params"]))


def test_bert_layernorm_params_not_decayed(tiny_model):
    from transformers import AutoModel

    model = AutoModel.from_pretrained(tiny_model)
    _, no_decay = build_optimizer(model, 1e-4, 0.01).param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    nd = [names[id(p)] for p in no_decay["params"]]
    assert nd and all(n.endswith("bias") or "LayerNorm" in n for n in nd)
    assert any("LayerNorm.weight" in n for n in nd)


def test_weight_decay_applied_only_to_matrices():
    model = _Tiny()
    for p in model.parameters():
        torch.nn.init.constant_(p, 1.0)
    opt = build_optimizer(model, lr=0.1, weight_decay=0.5)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # zero gradient: only decoupled weight decay moves a parameter
    opt.step()
    tol = fp_tolerance(torch.float32, 1)  # one step: 1 - lr·wd and the product, in fp32
    assert torch.allclose(model.lin.weight, torch.full_like(model.lin.weight, 1 - 0.1 * 0.5), rtol=tol, atol=0)
    # exact: no decay, and Adam's step from a zero gradient is 0 / (0 + eps) = 0
    assert torch.equal(model.lin.bias, torch.ones_like(model.lin.bias))
    assert torch.equal(model.norm.weight, torch.ones_like(model.norm.weight))


def test_schedule_linear_warmup_then_decay_to_zero():
    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.AdamW([p], lr=1.0)
    sched = ProgressSchedule(opt, warmup_ratio=0.1)
    lrs = []
    for k in range(100):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step((k + 1) / 100)
    lrs.append(sched.get_last_lr()[0])
    assert lrs[0] == 0.0
    for k in range(11):
        assert lrs[k] == pytest.approx(k / 10)
    assert lrs[10] == pytest.approx(1.0) and max(lrs) == pytest.approx(1.0)
    assert lrs[55] == pytest.approx(0.5)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[100] == pytest.approx(0.0)


def test_schedule_without_warmup_starts_at_peak_and_state_round_trips():
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    sched = ProgressSchedule(opt, 0.0)
    assert sched.get_last_lr()[0] == pytest.approx(2.0)
    sched.step(0.75)
    assert sched.get_last_lr()[0] == pytest.approx(0.5)
    state = sched.state_dict()
    opt2 = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=123.0)
    again = ProgressSchedule(opt2, 0.3)
    again.load_state_dict(state)
    assert again.get_last_lr()[0] == pytest.approx(0.5)  # the base lr and warm-up come from the checkpoint
    sched.step(5.0)  # progress past the end is clamped: lr 0, never negative
    assert sched.get_last_lr()[0] == 0.0


def test_optimizer_is_fused_adamw_with_decay_groups():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    opt = build_optimizer(model, 1e-3, 0.01)
    assert opt.defaults["fused"] is True  # the kernel HF Trainer uses by default; foreach was ~9% slower per step
    assert [g["weight_decay"] for g in opt.param_groups] == [0.01, 0.0]
    assert len(opt.param_groups[0]["params"]) == 1 and len(opt.param_groups[1]["params"]) == 3
    before = model[0].weight.detach().clone()
    model(torch.randn(2, 4)).sum().backward()
    opt.step()
    assert not torch.equal(before, model[0].weight)

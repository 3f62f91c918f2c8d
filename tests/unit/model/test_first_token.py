"""The first-token-only last layer: same logits, loss and gradients as the full forward, with less work."""
import threading

import pytest
import torch
from transformers import (BertConfig, BertForSequenceClassification, DistilBertConfig,
                          DistilBertForSequenceClassification, ElectraConfig, ElectraForSequenceClassification,
                          RobertaConfig, RobertaForSequenceClassification, RobertaPreLayerNormConfig,
                          RobertaPreLayerNormForSequenceClassification)

from conftest import fp_tolerance
from tuneforge.model.first_token import first_token_layer, first_token_only, use_first_token

SIZES = dict(vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
             max_position_embeddings=64, num_labels=3)
FAMILIES = {
    "bert": (BertConfig, BertForSequenceClassification),
    "roberta": (RobertaConfig, RobertaForSequenceClassification),
    "electra": (ElectraConfig, ElectraForSequenceClassification),
    "roberta-prelayernorm": (RobertaPreLayerNormConfig, RobertaPreLayerNormForSequenceClassification),
}


def _model(family: str, attn: str, dropout: float = 0.0):
    config_cls, model_cls = FAMILIES[family]
    torch.manual_seed(0)
    config = config_cls(**SIZES, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout, pad_token_id=1)
    config._attn_implementation = attn
    model = model_cls(config)
    use_first_token(model)
    return model


def _batch():
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 300, (4, 11), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0  # padding at the end of two rows: the first token must not see it
    mask[3, 4:] = 0
    ids[mask == 0] = 1
    return ids, mask, torch.tensor([0, 2, 1, 2])


def _loss_and_grads(model, ids, mask, labels, pruned: bool):
    model.zero_grad(set_to_none=True)
    if pruned:
        with first_token_only(model):
            out = model(input_ids=ids, attention_mask=mask, labels=labels)
    else:
        out = model(input_ids=ids, attention_mask=mask, labels=labels)
    out.loss.backward()
    return out.logits.detach(), out.loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()
                                                      if p.grad is not None}


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_same_logits_loss_and_gradients(family, attn):
    model = _model(family, attn).train()
    ids, mask, labels = _batch()
    logits, loss, grads = _loss_and_grads(model, ids, mask, labels, pruned=False)
    p_logits, p_loss, p_grads = _loss_and_grads(model, ids, mask, labels, pruned=True)
    # The same fp32 math in another order (the last layer's matmuls on 1 row instead of 11): per layer the sums run
    # over 11 keys, 32 hidden and 64 intermediate units; 2 layers, then pooler and classifier (32 each).
    tol = fp_tolerance(torch.float32, 2 * (11 + 32 + 64) + 2 * 32)
    atol = tol * logits.abs().max().item()
    torch.testing.assert_close(p_logits, logits, atol=atol, rtol=tol)
    torch.testing.assert_close(p_loss, loss, atol=atol, rtol=tol)  # |d loss / d logit| <= 1: the logits' error
    assert p_grads.keys() == grads.keys()
    for name, grad in grads.items():
        # Scaled by the largest gradient of the same module: a bias's gradient sums the same per-token terms as its
        # weight's (there times unit-scale inputs), and can be ~0 by itself (a key bias: softmax ignores it).
        module = name.rsplit(".", 1)[0]
        scale = max(g.abs().max().item() for n, g in grads.items() if n.rsplit(".", 1)[0] == module)
        torch.testing.assert_close(p_grads[name], grad, atol=tol * scale, rtol=tol, msg=f"gradient of {name}")


@pytest.mark.parametrize("family", list(FAMILIES))
def test_last_layer_runs_on_one_position_inside_the_block_only(family):
    model = _model(family, "sdpa").eval()
    ids, mask, _ = _batch()
    layer = first_token_layer(model)
    assert layer is not None
    rows = []
    hook = layer.intermediate.dense.register_forward_hook(lambda m, i, o: rows.append(i[0].shape[1]))
    with torch.no_grad():
        with first_token_only(model):
            model(input_ids=ids, attention_mask=mask)
        model(input_ids=ids, attention_mask=mask)
    hook.remove()
    assert rows == [1, ids.shape[1]]  # pruned inside, full outside: the model itself is unchanged
    encoder = getattr(model, model.base_model_prefix)
    with torch.no_grad():
        assert encoder(input_ids=ids, attention_mask=mask).last_hidden_state.shape[1] == ids.shape[1]


def test_pruned_training_with_dropout_learns():
    """With dropout on, the pruned forward is a different random draw but trains: loss falls on a fixed batch."""
    model = _model("bert", "sdpa", dropout=0.1).train()
    ids, mask, labels = _batch()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        with first_token_only(model):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_unsupported_models_run_unchanged():
    config = DistilBertConfig(vocab_size=300, dim=32, n_layers=2, n_heads=2, hidden_dim=64, num_labels=2)
    model = DistilBertForSequenceClassification(config).eval()
    assert first_token_layer(model) is None
    ids, mask, _ = _batch()
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=mask).logits
        with first_token_only(model):
            same = model(input_ids=ids, attention_mask=mask).logits
    assert torch.equal(same, full)  # exact: nothing pruned, the very same forward
    bare = _model("bert", "sdpa").bert
    assert first_token_layer(bare) is None  # no head: every position is an output
    assert use_first_token(model) is False and use_first_token(bare) is False


def test_the_lever_off_leaves_the_last_layer_full():
    """Without use_first_token (the first_token lever off), first_token_only changes nothing."""
    config_cls, model_cls = FAMILIES["bert"]
    model = model_cls(config_cls(**SIZES, pad_token_id=1)).eval()
    ids, mask, _ = _batch()
    rows = []
    first_token_layer(model).intermediate.dense.register_forward_hook(lambda m, i, o: rows.append(i[0].shape[1]))
    with torch.no_grad(), first_token_only(model):
        model(input_ids=ids, attention_mask=mask)
    assert rows == [ids.shape[1]]


def test_the_switch_is_per_thread():
    """A server thread embedding (all positions) is not pruned by another thread's prediction."""
    model = _model("bert", "sdpa").eval()
    ids, mask, _ = _batch()
    inside, seen = threading.Event(), {}

    def embed():
        inside.wait(5)
        with torch.no_grad():
            seen["length"] = model.bert(input_ids=ids, attention_mask=mask).last_hidden_state.shape[1]

    worker = threading.Thread(target=embed)
    worker.start()
    with first_token_only(model):
        inside.set()
        worker.join(5)
    assert seen["length"] == ids.shape[1]

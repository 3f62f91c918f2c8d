"""The word embedding trained as a table of the training set's rows: the same weights as dense fused AdamW +
clip_grad_norm_, with no dense gradient."""
import pytest
import torch
from transformers import BertConfig, BertForMaskedLM, BertForSequenceClassification

from conftest import fp_tolerance
from tuneforge.train.optim import build_optimizer
from tuneforge.train.sparse_rows import EmbeddingRowsAdamW, flush, row_table

SIZES = dict(vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
             max_position_embeddings=64, num_labels=3, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def _model():
    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(**SIZES)).train()


def _batches(n: int, accum: int = 1):
    """Batches over a 60-id slice of the vocabulary that shifts each step: rows get touched, then left alone."""
    gen = torch.Generator().manual_seed(1)
    out = []
    for step in range(n):
        parts = []
        for _ in range(accum):
            ids = torch.randint(5 + 20 * step, 65 + 20 * step, (4, 9), generator=gen)
            mask = torch.ones_like(ids)
            mask[1, 6:] = 0
            ids[mask == 0] = 0  # BERT's padding row: never updated
            parts.append((ids, mask, torch.randint(0, 3, (4,), generator=gen)))
        out.append(parts)
    return out


def _train_ids(batches):
    return torch.cat([ids[mask.bool()] for parts in batches for ids, mask, _ in parts])


def _train(model, optimizer, batches, max_norm, lrs):
    for parts, lr in zip(batches, lrs):
        for g in optimizer.param_groups:
            # A larger eps keeps Adam from blowing float-rounding differences in near-zero gradients (a key bias's
            # is 0 up to rounding) up to ±lr; the arithmetic compared is the same.
            g["lr"], g["eps"] = lr, 1e-3
        for ids, mask, labels in parts:
            (model(input_ids=ids, attention_mask=mask, labels=labels).loss / len(parts)).backward()
        if isinstance(optimizer, EmbeddingRowsAdamW):
            optimizer.clip_grad_norm_(max_norm)
        else:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    flush(optimizer)  # as the loop does before every evaluation and checkpoint


def _update_tolerance(lrs, accum: int) -> tuple[float, float]:
    """Dense vs table AdamW: the same update with the gradient's reductions in another order. Per step they are the
    global clip norm over the touched embedding rows (a batch spans <= 60 ids x 32 dims; other rows add 0) and the
    embedding's per-id sum over the batch's 4 x 9 tokens per accumulated part. Adam moves a weight by about lr per
    step, so that relative error of the gradient reaches the weights as lr times it, summed over the steps; the
    weights' own roundings (decay, add) are one per step."""
    grad = fp_tolerance(torch.float32, 60 * 32 + 4 * 9 * accum)
    return grad * sum(lrs), fp_tolerance(torch.float32, len(lrs))


@pytest.mark.parametrize("accum", [1, 2])
@pytest.mark.parametrize("max_norm", [0.05, 100.0])  # clipping binding, and not
def test_same_weights_as_dense_fused_adamw(accum, max_norm):
    lrs = [1e-2, 2e-2, 1.5e-2, 1e-2, 5e-3, 2e-3]  # the schedule moves the lr, so the lazy decay must track it
    batches = _batches(len(lrs), accum)
    dense = _model()
    _train(dense, build_optimizer(dense, 1e-2, weight_decay=0.1), batches, max_norm, lrs)
    model = _model()
    table = row_table(model, _train_ids(batches))
    optimizer = build_optimizer(model, 1e-2, weight_decay=0.1, table=table)
    assert isinstance(optimizer, EmbeddingRowsAdamW)
    _train(model, optimizer, batches[:3], max_norm, lrs[:3])
    _train(model, optimizer, batches[3:], max_norm, lrs[3:])  # a flush in the middle, as at an evaluation

    assert table.weight.grad is None  # the dense vocabulary-sized gradient never existed
    assert len(table.ids) < 200 and optimizer.state[table.weight]["exp_avg"].shape == (len(table.ids), 32)
    want, got = dict(dense.named_parameters()), dict(model.named_parameters())
    atol, rtol = _update_tolerance(lrs, accum)
    for name in want:
        torch.testing.assert_close(got[name], want[name], atol=atol, rtol=rtol, msg=name)
    emb = "bert.embeddings.word_embeddings.weight"
    start = _model().state_dict()[emb]
    # Never in a gradient (the padding row; rows past the batches' ids): weight decay only, as in the dense step.
    factor = float(torch.tensor([1 - lr * 0.1 for lr in lrs]).prod())
    tol = fp_tolerance(torch.float32, len(lrs))  # one rounding of the decay factor per step, lazily or not
    for rows in (slice(0, 1), slice(200, None)):
        torch.testing.assert_close(got[emb][rows], start[rows] * factor, atol=tol * start[rows].abs().max().item(),
                                   rtol=tol)


def test_state_dict_round_trip_resumes_identically():
    lrs = [1e-2] * 6
    batches = _batches(6)
    ids = _train_ids(batches)
    whole = _model()
    opt = build_optimizer(whole, 1e-2, 0.1, table=row_table(whole, ids))
    _train(whole, opt, batches, 1.0, lrs)

    first = _model()
    opt = build_optimizer(first, 1e-2, 0.1, table=row_table(first, ids))
    _train(first, opt, batches[:3], 1.0, lrs[:3])
    weights, state = {k: v.clone() for k, v in first.state_dict().items()}, opt.state_dict()
    resumed = _model()
    opt = build_optimizer(resumed, 1e-2, 0.1, table=row_table(resumed, ids))
    resumed.load_state_dict(weights)
    opt.load_state_dict(state)
    _train(resumed, opt, batches[3:], 1.0, lrs[3:])
    # The same table arithmetic; only the pending decay of rows outside the table is a product over 6 steps in one
    # run and over 3 + 3 in the other: one rounding per step.
    tol = fp_tolerance(torch.float32, len(lrs))
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(b, a, atol=tol * a.abs().max().item(), rtol=tol, msg=name)
    assert set(opt.state_dict()["state"][0]) >= {"step", "exp_avg", "exp_avg_sq"}  # AdamW's keys, so tools read it


def test_not_used_for_tied_or_frozen_embeddings():
    torch.manual_seed(0)
    mlm = BertForMaskedLM(BertConfig(**SIZES))  # decoder tied to the word embedding
    assert row_table(mlm, torch.arange(10)) is None
    model = _model()
    model.get_input_embeddings().weight.requires_grad_(False)
    assert row_table(model, torch.arange(10)) is None


def test_lookup_outside_the_table_fails_and_release_restores_the_plain_embedding():
    model = _model()
    table = row_table(model, torch.arange(5, 50))
    ids = torch.tensor([[7, 8, 120]])
    with pytest.raises(RuntimeError, match="outside the rows"):
        model(input_ids=ids)
    with torch.no_grad():  # evaluation reads the weight itself, any id
        before = model(input_ids=ids).logits
    table.release()
    # The same weights and math, with grad mode on (kernels may differ): 2 layers of sums over 3 tokens, 32 hidden
    # and 64 intermediate units, then pooler and classifier (32 each).
    tol = fp_tolerance(torch.float32, 2 * (3 + 32 + 64) + 2 * 32)
    torch.testing.assert_close(model(input_ids=ids).logits.detach(), before, atol=tol * before.abs().max().item(),
                               rtol=tol)
    assert "forward" not in model.get_input_embeddings().__dict__


@pytest.mark.parametrize("first", ["table", "dense"])
def test_checkpoints_cross_between_table_and_dense_adamw(first):
    """A checkpoint saved with the table resumes densely (several processes, another device) and vice versa."""
    lrs = [1e-2] * 6
    batches = _batches(6)
    ids = _train_ids(batches)
    whole = _model()
    _train(whole, build_optimizer(whole, 1e-2, 0.1), batches, 1.0, lrs)

    def optimizer(model, table: bool):
        return build_optimizer(model, 1e-2, 0.1, table=row_table(model, ids) if table else None)

    a = _model()
    opt = optimizer(a, first == "table")
    _train(a, opt, batches[:3], 1.0, lrs[:3])
    weights, state = {k: v.clone() for k, v in a.state_dict().items()}, opt.state_dict()
    emb = state["state"][0]
    if first == "table":  # compact: the table's rows and their vocabulary ids, not 300 rows of mostly zeros
        assert emb["exp_avg"].shape == (len(ids.unique()) + 1, 32) and emb["row_ids"].tolist() == sorted(
            set(ids.tolist()) | {0})
    else:
        assert emb["exp_avg"].shape == (300, 32)
    b = _model()
    opt = optimizer(b, first != "table")
    b.load_state_dict(weights)
    opt.load_state_dict(state)
    _train(b, opt, batches[3:], 1.0, lrs[3:])
    atol, rtol = _update_tolerance(lrs, accum=1)
    for (name, x), y in zip(whole.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(y, x, atol=atol, rtol=rtol, msg=name)


def test_not_used_for_an_embedding_shared_by_several_modules():
    from transformers import T5Config, T5ForSequenceClassification

    torch.manual_seed(0)
    t5 = T5ForSequenceClassification(T5Config(vocab_size=300, d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=2))
    assert row_table(t5, torch.arange(10)) is None  # encoder and decoder embed_tokens share `shared.weight`


def test_the_loop_flushes_before_every_evaluation_and_checkpoint(tmp_path):
    """fit() hands evaluation and checkpoints the dense update's weights: the table written back, no decay pending."""
    from tuneforge.config.schema import RuntimeConfig
    from tuneforge.data.encode import Encoded, LengthGroupedBatches
    from tuneforge.train.loop import LoopConfig, fit
    from tuneforge.train.objectives import make_objective
    from tuneforge.train.optim import ProgressSchedule
    from tuneforge.train.runtime import make_accelerator

    accelerator = make_accelerator(RuntimeConfig(device="cpu", threads=1, levers="all,-reuse_memory"))
    gen = torch.Generator().manual_seed(2)
    rows = [torch.randint(5, 120, (int(n),), generator=gen).tolist() for n in torch.randint(3, 9, (24,), generator=gen)]
    data = LengthGroupedBatches(Encoded(rows, torch.randint(0, 3, (24,), generator=gen).numpy()), pad_id=0)
    model = _model()
    table = row_table(model, torch.tensor([i for r in rows for i in r]))
    optimizer = build_optimizer(model, 1e-2, 0.1, table=table)
    scheduler = ProgressSchedule(optimizer, 0.0)
    model, optimizer = accelerator.prepare(model, optimizer)
    seen = []

    def evaluate(m):
        state = optimizer.optimizer.state[table.weight]
        seen.append(torch.equal(table.weight[table.ids], table.rows) and float(state["pending_decay"]) == 1.0)
        return {"accuracy": len(seen) / 10}  # keeps improving: every evaluation saves best/ and a checkpoint

    cfg = LoopConfig(run_dir=tmp_path, total_steps=6, batch_size=4, eval_every=2, progress=False)
    fit(accelerator, model, optimizer, scheduler, data, make_objective("classification", multi_label=False), evaluate,
        cfg)
    assert seen == [True, True, True]
    start = _model().bert.embeddings.word_embeddings.weight
    assert not torch.equal(table.weight[table.ids], start[table.ids])  # the trained table reached the weight

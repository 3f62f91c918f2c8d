"""SFT packing: best-fit rows, and a packed row computes each example exactly as if it stood alone."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import fp_tolerance
from sft_helpers import FFN, HIDDEN, VOCAB, build_tiny_chat_lm
from tuneforge.data.sft import IGNORE, Chat, encode_chats
from tuneforge.data.sft_pack import SftBatches, pack_examples
from tuneforge.model.lm_forward import lm_loss_sum


def test_best_fit_decreasing_rows():
    rows = pack_examples(np.array([6, 5, 4, 3, 2]), capacity=10)
    assert rows == [[0, 2], [1, 3, 4]]  # 6+4 fills a row exactly; 5+3+2 the other
    lengths = np.random.default_rng(0).integers(1, 50, 500)
    rows = pack_examples(lengths, 64)
    assert sorted(i for r in rows for i in r) == list(range(500))
    assert all(lengths[r].sum() <= 64 for r in rows)
    assert len(rows) <= int(np.ceil(lengths.sum() / 64)) * 1.1  # near the lower bound: little padding left


CHATS = [Chat([{"role": "user", "content": "Classify: the food was good"}, {"role": "assistant", "content": "positive"}], 1),
         Chat([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "外卖到了吗？"},
               {"role": "assistant", "content": "快到了"}, {"role": "user", "content": "thanks"},
               {"role": "assistant", "content": "You are welcome!"}], 2),
         Chat([{"role": "user", "content": "slow app"}, {"role": "assistant", "content": "negative, very slow"}], 3),
         Chat([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}], 4)]


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    from tuneforge.model.causal import load_causal_lm, load_causal_tokenizer

    folder = build_tiny_chat_lm(tmp_path_factory.mktemp("sft-pack") / "lm")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 64-wide model: threads only wait for each other (badly on a busy machine)
    yield load_causal_tokenizer(str(folder)), load_causal_lm(str(folder))
    torch.set_num_threads(threads)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("label_logits", [False, True])
def test_packed_rows_loss_is_the_sum_of_each_example_alone(lm, attention, label_logits):
    tok, model = lm
    model.config._attn_implementation = attention
    enc = encode_chats(tok, CHATS, 512)
    alone = SftBatches(enc, tok.pad_token_id, packed=False, capacity=512)
    # capacity so that the rows differ in length: the shorter one is padded (a padding segment of its own)
    packed = SftBatches(enc, tok.pad_token_id, packed=True, capacity=int(enc.lengths.max()) + 12)
    assert 1 < len(packed) < len(enc) and len(set(packed.lengths)) > 1
    with torch.no_grad():
        single = [lm_loss_sum(model, alone.collate(np.array([i]), 0), label_logits) for i in range(len(enc))]
        total, count, logits = lm_loss_sum(model, packed.collate(np.arange(len(packed)), 0), label_logits)
    expected = sum(s[0] for s in single)
    assert int(count) == sum(int(s[1]) for s in single) == packed.label_tokens
    # the same per-token losses summed in another order: 2 layers × (hidden + FFN) + the vocabulary's softmax
    tol = fp_tolerance(torch.float32, int(count) + 2 * (HIDDEN + FFN) + VOCAB)
    assert float(total) == pytest.approx(float(expected), rel=tol)
    if label_logits:
        assert logits.shape == (int(count), model.config.vocab_size)  # the head ran at the answer positions only
    model.config._attn_implementation = "sdpa"


def test_label_logits_lever_gives_the_full_heads_loss_and_gradient(lm):
    tok, model = lm
    batch = SftBatches(encode_chats(tok, CHATS, 512), tok.pad_token_id, packed=True, capacity=512).collate(
        np.array([0]), 0)
    grads = []
    for label_logits in (False, True):
        model.zero_grad()
        total, count, _ = lm_loss_sum(model, batch, label_logits)
        (total / count).backward()
        grads.append((float(total.detach()), model.get_input_embeddings().weight.grad.clone()))
    tol = fp_tolerance(torch.float32, int(count) + 2 * (HIDDEN + FFN) + VOCAB)
    assert grads[1][0] == pytest.approx(grads[0][0], rel=tol)
    scale = grads[0][1].abs().max().item()
    assert torch.allclose(grads[1][1], grads[0][1], rtol=tol, atol=tol * scale)
    model.zero_grad()


def test_collate_marks_segments_and_never_targets_a_segment_start(lm):
    tok, _ = lm
    enc = encode_chats(tok, CHATS, 512)
    packed = SftBatches(enc, tok.pad_token_id, packed=True, capacity=512)
    batch = packed.collate(np.array([0]), 0)
    segments, labels = batch["segment_ids"][0], batch["labels"][0]
    starts = torch.nonzero(torch.diff(segments, prepend=torch.tensor([-1]))).flatten()
    assert len(starts) == len(packed.rows[0]) and (labels[starts] == IGNORE).all()
    padded = SftBatches(enc, tok.pad_token_id, packed=False, capacity=512).collate(np.array([0, 1]), 0)
    assert set(padded) == {"input_ids", "labels", "attention_mask"}
    assert (padded["labels"][padded["attention_mask"] == 0] == IGNORE).all()

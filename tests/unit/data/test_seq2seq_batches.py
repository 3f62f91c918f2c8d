"""Encoder-decoder batches: pairs encoded once per side (EOS on both), over-long training pairs left out and counted,
held-out pairs cut and kept; token-budget batches never exceed the budget with padding, cover every pair once per
epoch, are a pure function of (seed, epoch), and collate to padded ids + IGNORE-padded labels."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tuneforge.data.seq2seq_batches import IGNORE, Seq2SeqBatches, Seq2SeqEncoded, cut_by_tokens, encode_pairs
from tuneforge.data.tokenizer_train import train_tokenizer
from tuneforge.errors import UserError

WORDS = "a man woman dog runs on the beach in blue red shirt ein Mann Frau Hund läuft am Strand im blauen roten Hemd"


@pytest.fixture(scope="module")
def tok():
    rng = np.random.default_rng(0)
    words = WORDS.split()
    texts = [" ".join(rng.choice(words, rng.integers(3, 12))) + "." for _ in range(300)]
    return train_tokenizer(texts, "seq2seq", vocab_size=200)


def synthetic(n: int = 500, seed: int = 0) -> Seq2SeqEncoded:
    """Pairs of random lengths (1-60 source tokens, the target about as long, as translations are); ids are the pair
    number, so a batch shows whose tokens it holds."""
    rng = np.random.default_rng(seed)
    src_len = rng.integers(1, 61, n)
    tgt_len = np.maximum(1, src_len + rng.integers(-8, 12, n))
    return Seq2SeqEncoded([[i] * int(k) for i, k in enumerate(src_len)], [[i] * int(k) for i, k in enumerate(tgt_len)],
                          list(range(n)), [])


def test_encode_pairs_adds_eos_on_both_sides(tok):
    enc = encode_pairs(tok, ["ein Mann am Strand."], ["a man on the beach."], 64, 64, drop_long=True)
    assert enc.source_ids == [tok("ein Mann am Strand.")["input_ids"]]
    assert enc.target_ids == [tok(text_target="a man on the beach.")["input_ids"]]
    assert enc.source_ids[0][-1] == enc.target_ids[0][-1] == tok.eos_token_id
    assert enc.index == [0] and enc.too_long == []


def test_training_leaves_out_over_long_pairs_and_counts_them(tok):
    long = " ".join(["Hund"] * 40)
    sources = ["ein Mann.", long, "eine Frau.", "ein Hund.", "der Strand."]
    targets = ["a man.", "a dog.", " ".join(["dog"] * 40), "a dog.", "the beach."]
    enc = encode_pairs(tok, sources, targets, 16, 16, drop_long=True)
    assert enc.too_long == [1, 2] and enc.index == [0, 3, 4] and len(enc) == 3
    assert enc.source_ids[1] == tok("ein Hund.")["input_ids"]  # what is kept stays paired
    assert all(len(s) <= 16 for s in enc.source_ids) and all(len(t) <= 16 for t in enc.target_ids)


def test_held_out_pairs_are_cut_not_dropped(tok):
    long = " ".join(["Hund"] * 40)
    sources, targets = ["ein Mann.", long, "eine Frau."], ["a man.", "a dog.", " ".join(["dog"] * 40)]
    enc = encode_pairs(tok, sources, targets, 16, 12, drop_long=False)
    assert enc.index == [0, 1, 2] and enc.too_long == [1, 2]
    assert len(enc.source_ids[1]) == 16 and enc.source_ids[1][-1] == tok.eos_token_id
    assert len(enc.target_ids[2]) == 12 and enc.target_ids[2][-1] == tok.eos_token_id
    assert enc.source_ids[0] == tok("ein Mann.")["input_ids"] and enc.target_ids[1] == tok("a dog.")["input_ids"]


@pytest.mark.parametrize("grouped", [True, False])
@pytest.mark.parametrize("budget", [130, 1000, 4096])
def test_token_budget_is_never_exceeded_with_padding(grouped, budget):
    data = Seq2SeqBatches(synthetic(), pad_id=0, batch_tokens=budget, grouped=grouped)
    batches = data.batches(batch_size=8, seed=3, epoch=1)
    for b in batches:
        batch = data.collate(b, epoch=1)
        assert batch["input_ids"].numel() + batch["labels"].numel() <= budget
        assert data.padded_tokens(b) == len(b) * (batch["input_ids"].shape[1] + batch["labels"].shape[1])
    if budget >= 1000:  # batches are cut by tokens, not rows: they hold many rows
        assert np.mean([len(b) for b in batches]) > 5


@pytest.mark.parametrize("grouped", [True, False])
def test_every_pair_once_per_epoch_and_deterministic_per_seed_and_epoch(grouped):
    data = Seq2SeqBatches(synthetic(), pad_id=0, batch_tokens=1000, grouped=grouped)
    for epoch in (0, 1):
        order = np.concatenate(data.batches(8, seed=5, epoch=epoch))
        assert sorted(order.tolist()) == list(range(500))
    same = [b.tolist() for b in data.batches(8, 5, 2)]
    assert same == [b.tolist() for b in data.batches(999, 5, 2)]  # batch_size is ignored
    assert same != [b.tolist() for b in data.batches(8, 5, 3)]
    assert same != [b.tolist() for b in data.batches(8, 6, 2)]
    assert data.steps_per_epoch() == len(data.batches(8, 0, 0))


def test_grouping_puts_similar_lengths_together():
    enc = synthetic(2000)
    grouped = Seq2SeqBatches(enc, 0, 2048, grouped=True)
    plain = Seq2SeqBatches(enc, 0, 2048, grouped=False)

    def fill(d):
        bs = d.batches(0, 1, 0)
        return d.lengths.sum() / sum(d.padded_tokens(b) for b in bs), len(bs)

    (fg, ng), (fp, np_) = fill(grouped), fill(plain)
    assert fg > 0.75 and fp < 0.6 and ng < np_  # fewer, fuller batches
    first = grouped.batches(0, 1, 0)[0]
    assert grouped.padded_tokens(first) == max(grouped.padded_tokens(b) for b in grouped.batches(0, 1, 0))


def test_sorted_batches_for_evaluation_cover_everything_in_order():
    data = Seq2SeqBatches(synthetic(), 0, 1000)
    batches = data.sorted_batches()
    assert sorted(np.concatenate(batches).tolist()) == list(range(500))
    tops = [int(np.maximum(data.src_len[b], data.tgt_len[b]).max()) for b in batches]
    assert tops == sorted(tops, reverse=True) and all(data.padded_tokens(b) <= 1000 for b in batches)
    assert [b.tolist() for b in batches] == [b.tolist() for b in data.sorted_batches()]


def test_a_pair_longer_than_the_budget_is_a_user_error():
    with pytest.raises(UserError, match=r"train.batch_tokens 100 is smaller than the longest pair \(\d+ tokens"):
        Seq2SeqBatches(synthetic(), 0, 100)


def test_collate_pads_ids_with_pad_and_labels_with_ignore():
    enc = Seq2SeqEncoded([[5, 6, 1], [7, 1]], [[8, 1], [9, 10, 11, 1]], [0, 1])
    data = Seq2SeqBatches(enc, pad_id=0, batch_tokens=64)
    assert data.lengths.tolist() == [5, 6] and len(data) == 2
    batch = data.collate(np.array([1, 0]), epoch=0)
    assert batch["input_ids"].tolist() == [[7, 1, 0], [5, 6, 1]]
    assert batch["attention_mask"].tolist() == [[1, 1, 0], [1, 1, 1]]
    assert batch["labels"].tolist() == [[9, 10, 11, 1], [8, 1, IGNORE, IGNORE]]
    assert all(v.dtype == torch.long for v in batch.values())
    assert Seq2SeqBatches.loss_weight(batch) == 6


def test_cut_by_tokens_counts_the_longest_of_each_side():
    src, tgt = np.array([10, 1, 1]), np.array([1, 10, 1])
    # rows 0 and 1 together pad to 2 × (10 + 10) = 40, not 2 × 11
    assert [b.tolist() for b in cut_by_tokens(np.arange(3), src, tgt, 39)] == [[0], [1, 2]]
    assert [b.tolist() for b in cut_by_tokens(np.arange(3), src, tgt, 40)] == [[0, 1], [2]]


def test_cut_by_tokens_fills_each_batch_until_the_next_pair_would_not_fit():
    enc = synthetic(300, seed=2)
    data = Seq2SeqBatches(enc, 0, 700)
    order = np.random.default_rng(0).permutation(300)
    batches = cut_by_tokens(order, data.src_len, data.tgt_len, 700)
    assert np.concatenate(batches).tolist() == order.tolist()  # consecutive runs of the order
    for b, nxt in zip(batches, batches[1:]):
        assert data.padded_tokens(b) <= 700 < data.padded_tokens(np.append(b, nxt[0]))

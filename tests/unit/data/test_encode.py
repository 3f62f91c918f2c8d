"""Batching: length-grouped, deterministic per (seed, epoch), dynamic padding."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tuneforge.data.encode import Encoded, collate, encode_texts, length_grouped_batches, sorted_batches


@pytest.fixture(scope="module")
def lengths():
    return np.random.default_rng(0).integers(3, 129, size=1000)


def _padding(batches, lengths) -> int:
    return int(sum((lengths[b].max() - lengths[b]).sum() for b in batches))


def test_deterministic_per_seed_and_epoch(lengths):
    a = length_grouped_batches(lengths, 16, seed=1, epoch=0)
    b = length_grouped_batches(lengths, 16, seed=1, epoch=0)
    assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_differs_across_epochs_and_seeds(lengths):
    e0 = np.concatenate(length_grouped_batches(lengths, 16, seed=1, epoch=0))
    e1 = np.concatenate(length_grouped_batches(lengths, 16, seed=1, epoch=1))
    s2 = np.concatenate(length_grouped_batches(lengths, 16, seed=2, epoch=0))
    assert not np.array_equal(e0, e1)
    assert not np.array_equal(e0, s2)


@pytest.mark.parametrize("n,batch", [(1000, 16), (1001, 16), (5, 16), (37, 4)])
def test_covers_every_index_once(n, batch):
    lengths = np.random.default_rng(n).integers(1, 50, size=n)
    batches = length_grouped_batches(lengths, batch, seed=0, epoch=3, mega=3)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(n))
    assert all(1 <= len(b) <= batch for b in batches)
    assert sum(len(b) < batch for b in batches) <= -(-n // (batch * 3))  # at most one short batch per mega chunk


def test_first_batch_holds_longest_row(lengths):
    for epoch in range(3):
        batches = length_grouped_batches(lengths, 16, seed=7, epoch=epoch, mega=5)
        assert lengths[batches[0]].max() == lengths.max()


def test_batches_are_length_homogeneous(lengths):
    grouped = length_grouped_batches(lengths, 16, seed=0, epoch=0)
    perm = np.random.default_rng(0).permutation(len(lengths))
    random_batches = [perm[i:i + 16] for i in range(0, len(perm), 16)]
    ratio = _padding(grouped, lengths) / _padding(random_batches, lengths)
    assert ratio < 0.1, ratio


def test_batch_order_is_shuffled(lengths):
    batches = length_grouped_batches(lengths, 16, seed=0, epoch=0)
    maxima = [int(lengths[b].max()) for b in batches[1:]]
    assert maxima != sorted(maxima, reverse=True)  # not simply longest→shortest


def test_collate_pads_to_batch_max_with_mask():
    data = Encoded([[5, 6, 7], [8], [9, 10, 11, 12, 13], [14, 15]], labels=np.array([0, 1, 2, 1]))
    batch = collate(data, np.array([0, 1, 3]), pad_id=99)
    assert batch["input_ids"].shape == (3, 3)  # batch max (3), not the data max (5)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 99, 99], [14, 15, 99]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0], [1, 1, 0]]
    assert batch["labels"].tolist() == [0, 1, 1]
    assert batch["input_ids"].dtype == torch.long and batch["attention_mask"].dtype == torch.long


def test_collate_multi_hot_labels_and_unlabelled():
    multi = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32)
    data = Encoded([[1, 2], [3], [4, 5, 6]], labels=multi)
    batch = collate(data, np.array([2, 0]), pad_id=0)
    assert batch["labels"].tolist() == [[1, 1], [1, 0]]
    assert "labels" not in collate(Encoded([[1], [2, 3]]), np.array([0, 1]), pad_id=0)


def test_sorted_batches_longest_first_and_complete():
    lengths = np.array([3, 9, 1, 9, 4, 7, 2])
    batches = sorted_batches(lengths, 3)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(7))
    assert lengths[flat].tolist() == sorted(lengths.tolist(), reverse=True)
    assert [len(b) for b in batches] == [3, 3, 1]
    assert flat[:2].tolist() == [1, 3]  # stable for ties


def test_encoded_lengths_and_encode_texts_truncates(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    texts = ["good movie", " ".join(["very"] * 50)]
    enc = encode_texts(tok, texts, max_length=10, labels=np.array([1, 0]))
    assert len(enc) == 2
    assert enc.lengths.tolist() == [4, 10]  # [CLS] good movie [SEP]; truncated to 10
    assert enc.input_ids[0][0] == tok.cls_token_id and enc.input_ids[0][-1] == tok.sep_token_id
    assert enc.input_ids[1][-1] == tok.sep_token_id


def test_sorted_batches_bound_padded_tokens():
    import numpy as np

    from tuneforge.data.encode import sorted_batches

    lengths = np.array([100, 10, 60, 5, 128, 20, 30, 8])
    plain = sorted_batches(lengths, 4)
    assert [len(b) for b in plain] == [4, 4]
    bounded = sorted_batches(lengths, 4, max_tokens=256)
    assert sorted(np.concatenate(bounded).tolist()) == list(range(8))  # every row once
    assert all(len(b) * lengths[b].max() <= 256 or len(b) == 1 for b in bounded)
    assert [len(b) for b in bounded] == [2, 4, 2]  # 128,100 | 60,30,20,10 | 8,5
    assert [len(b) for b in sorted_batches(lengths, 4, max_tokens=64)] == [1, 1, 1, 2, 3]  # a long row alone


def test_encode_texts_in_chunks_gives_the_one_call_ids(tiny_model, monkeypatch):
    import tuneforge.data.encode as encode
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    texts = [f"the movie was {'very ' * i}good" for i in range(10)]
    monkeypatch.setattr(encode, "ENCODE_CHUNK", 3)  # 4 calls, the last one short
    got = encode.encode_texts(tokenizer, texts, 8, np.arange(10))
    assert got.input_ids == tokenizer(texts, truncation=True, max_length=8)["input_ids"]
    assert max(map(len, got.input_ids)) == 8 and len(got) == 10 and got.labels.tolist() == list(range(10))

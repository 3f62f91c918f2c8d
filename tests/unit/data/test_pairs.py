"""Sentence pairs for contrastive encoder tuning: labels of each pair, coverage of every row, seeding, batches."""
from __future__ import annotations

import numpy as np

from tuneforge.data.encode import Encoded
from tuneforge.data.pairs import PairBatches, pair_iterations, sentence_pairs


def test_every_pair_is_flagged_by_whether_its_labels_match():
    targets = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    pairs = sentence_pairs(targets, iterations=5, seed=3)
    assert len(pairs) == 2 * 5 * len(targets)  # one same-label and one other-label pair per row and iteration
    same = targets[pairs[:, 0]] == targets[pairs[:, 1]]
    assert np.array_equal(same.astype(int), pairs[:, 2])
    assert (pairs[:, 0] != pairs[:, 1]).all()  # a row is never paired with itself
    assert np.array_equal(np.bincount(pairs[:, 0], minlength=len(targets)), np.full(len(targets), 10))


def test_a_label_with_one_row_gets_only_other_label_pairs():
    targets = np.array([0, 0, 0, 1])
    pairs = sentence_pairs(targets, iterations=4, seed=0)
    lone = pairs[pairs[:, 0] == 3]
    assert len(lone) == 4 and (lone[:, 2] == 0).all()


def test_pairs_are_seeded():
    targets = np.array([0, 1] * 10)
    assert np.array_equal(sentence_pairs(targets, 3, seed=7), sentence_pairs(targets, 3, seed=7))
    assert not np.array_equal(sentence_pairs(targets, 3, seed=7), sentence_pairs(targets, 3, seed=8))


def test_iterations_follow_setfit_within_the_pair_budget():
    assert pair_iterations(100, 10_000) == 20  # 4,000 pairs
    assert pair_iterations(500, 10_000) == 10
    assert pair_iterations(20_000, 10_000) == 1


def test_pair_batches_collate_both_sides_padded_apart():
    data = Encoded([[5, 6], [7, 8, 9, 10], [11]], np.array([0, 1, 0]))
    pairs = np.array([[0, 2, 1], [1, 0, 0]])
    batches = PairBatches(data, pairs, pad_id=0)
    assert batches.lengths.tolist() == [3, 6] and len(batches) == 2
    batch = batches.collate(np.array([0, 1]), epoch=0)
    assert batch["input_ids"].tolist() == [[5, 6, 0, 0], [7, 8, 9, 10]]
    assert batch["pair_input_ids"].tolist() == [[11, 0], [5, 6]]
    assert batch["pair_attention_mask"].tolist() == [[1, 0], [1, 1]]
    assert batch["same"].tolist() == [1.0, 0.0]

"""Sentence pairs for contrastive encoder tuning (SetFit-style, `train.contrastive`): each training row is paired
with a random row of its own label (target 1: similar) and one of another label (target 0), `iterations` times.
The loop trains on pairs as it trains on rows: lengths, seeded length-grouped batches, collate."""
from __future__ import annotations

import numpy as np
import torch

from tuneforge.data.encode import Encoded, LengthGroupedBatches, collate


def sentence_pairs(targets: np.ndarray, iterations: int, seed: int) -> np.ndarray:
    """(P, 3) int array of (row, other row, same label 0/1): per iteration and row, one positive pair (another row of
    its label, when it has one) and one negative pair (a row of another label)."""
    rng = np.random.default_rng(seed)
    targets = np.asarray(targets)
    by_label = {int(c): np.flatnonzero(targets == c) for c in np.unique(targets)}
    labels = np.array(sorted(by_label))
    pairs = []
    for _ in range(iterations):
        for i, y in enumerate(targets.tolist()):
            same = by_label[y]
            if len(same) > 1:
                j = i
                while j == i:
                    j = int(same[rng.integers(len(same))])
                pairs.append((i, j, 1))
            others = labels[labels != y]
            if len(others):
                rows = by_label[int(others[rng.integers(len(others))])]
                pairs.append((i, int(rows[rng.integers(len(rows))]), 0))
    out = np.array(pairs, dtype=np.int64).reshape(-1, 3)
    return out[rng.permutation(len(out))]


def pair_iterations(rows: int, budget: int, most: int = 20) -> int:
    """Passes of pair drawing: SetFit's 20, fewer when 2 pairs × rows × 20 would exceed `budget` pairs."""
    return max(1, min(most, budget // max(1, 2 * rows)))


class PairBatches(LengthGroupedBatches):
    """Training data for the loop: batches of sentence pairs of an `Encoded`, each side padded to its own longest
    row; a pair's length is both sides' tokens (what length grouping and micro-batching read)."""

    def __init__(self, data: Encoded, pairs: np.ndarray, pad_id: int, grouped: bool = True,
                 micro_tokens: int | None = None):
        super().__init__(data, pad_id, grouped, micro_tokens)
        self.pairs = pairs
        self._lengths = self._lengths[pairs[:, 0]] + self._lengths[pairs[:, 1]]

    def collate(self, index: np.ndarray, epoch: int) -> dict[str, torch.Tensor]:
        rows = self.pairs[index]
        first, second = collate(self.data, rows[:, 0], self.pad_id), collate(self.data, rows[:, 1], self.pad_id)
        return {"input_ids": first["input_ids"], "attention_mask": first["attention_mask"],
                "pair_input_ids": second["input_ids"], "pair_attention_mask": second["attention_mask"],
                "same": torch.from_numpy(rows[:, 2]).float()}

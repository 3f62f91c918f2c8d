"""SFT batches for the training loop and the held-out evaluation: examples packed into rows of at most `max_length`
tokens (best-fit decreasing), each example its own segment (`segment_ids`: the model attends within it and restarts
its positions, so packing changes no example's loss), or one example per row padded per batch.
"""
from __future__ import annotations

from bisect import bisect_left, insort

import numpy as np
import torch

from tuneforge.data.encode import length_grouped_batches, shuffled_batches
from tuneforge.data.sft import IGNORE, SftEncoded


def pack_examples(lengths: np.ndarray, capacity: int) -> list[list[int]]:
    """Rows of example indices whose lengths sum to at most `capacity`: best-fit decreasing (each example, longest
    first, goes to the row it fills most tightly). Deterministic; every example lands in exactly one row."""
    rows: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (room left, row), sorted
    for i in np.argsort(-lengths, kind="stable").tolist():
        n = int(lengths[i])
        k = bisect_left(free, (n, -1))
        if k < len(free):
            room, row = free.pop(k)
            rows[row].append(i)
        else:
            room, row = capacity, len(rows)
            rows.append([i])
        if room - n > 0:
            insort(free, (room - n, row))
    return rows


class SftBatches:
    """The loop's data protocol (`lengths`, `batches`, `collate`) over encoded SFT examples.

    packed: a row holds several examples; `segment_ids` (B, T) numbers them 1, 2, ... and padding 0 (a segment of its
    own that no label reads). Else a row is one example, with `attention_mask` for the padding.
    """

    def __init__(self, data: SftEncoded, pad_id: int, packed: bool, capacity: int, grouped: bool = True):
        self.data, self.pad_id, self.packed, self.grouped = data, pad_id, packed, grouped
        lengths = data.lengths
        self.rows = pack_examples(lengths, capacity) if packed else [[i] for i in range(len(data))]
        self._lengths = np.array([int(lengths[r].sum()) for r in self.rows], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def lengths(self) -> np.ndarray:
        """Real tokens per row (what the loop counts as training tokens)."""
        return self._lengths

    @property
    def label_tokens(self) -> int:
        return sum(sum(1 for x in labels[1:] if x != IGNORE) for labels in self.data.labels)

    @staticmethod
    def loss_weight(batch: dict[str, torch.Tensor]) -> int:
        """The next-token targets in a collated batch: the loop weighs accumulated micro-batches by them."""
        return int((batch["labels"][:, 1:] != IGNORE).sum())

    def batches(self, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
        if not self.grouped:
            return shuffled_batches(len(self.rows), batch_size, seed, epoch)
        return length_grouped_batches(self._lengths, batch_size, seed, epoch)

    def collate(self, index: np.ndarray, epoch: int) -> dict[str, torch.Tensor]:
        width = int(self._lengths[index].max())
        ids = torch.full((len(index), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(index), width), IGNORE, dtype=torch.long)
        segments = torch.zeros((len(index), width), dtype=torch.long)
        for j, row in enumerate(index):
            at = 0
            for seg, i in enumerate(self.rows[row], 1):
                n = len(self.data.input_ids[i])
                ids[j, at:at + n] = torch.tensor(self.data.input_ids[i])
                labels[j, at:at + n] = torch.tensor(self.data.labels[i])
                labels[j, at] = IGNORE  # an example's first token is never a target (nothing before it is its own)
                segments[j, at:at + n] = seg
                at += n
        if self.packed:
            return {"input_ids": ids, "labels": labels, "segment_ids": segments}
        return {"input_ids": ids, "labels": labels, "attention_mask": (segments > 0).long()}

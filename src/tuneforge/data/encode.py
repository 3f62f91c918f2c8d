"""Tokenize once into id lists, then length-grouped batches with dynamic padding (no pad-to-128 waste)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Encoded:
    input_ids: list[list[int]]
    labels: np.ndarray | None = None  # (N,) int ids or (N, C) multi-hot

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(x) for x in self.input_ids), dtype=np.int64, count=len(self.input_ids))


ENCODE_CHUNK = 1024  # texts per tokenizer call: its per-text encodings (tokens, offsets, masks) live one chunk at a time


def encode_texts(tokenizer, texts: list[str], max_length: int, labels: np.ndarray | None = None) -> Encoded:
    """Token ids of each text (truncated to `max_length`, special tokens added), `ENCODE_CHUNK` texts at a time and
    without the attention masks and token types the batches rebuild anyway: tokenizing 10,000 texts in one call
    held every text's full encoding at once."""
    ids: list[list[int]] = []
    for start in range(0, len(texts), ENCODE_CHUNK):
        ids += tokenizer(texts[start:start + ENCODE_CHUNK], truncation=True, max_length=max_length,
                         add_special_tokens=True, return_attention_mask=False,
                         return_token_type_ids=False)["input_ids"]
    return Encoded(ids, labels)


def length_grouped_batches(lengths: np.ndarray, batch_size: int, seed: int, epoch: int,
                           mega: int = 50) -> list[np.ndarray]:
    """Shuffled, then sorted by length inside mega-batches of `mega` batches, then batch order shuffled.

    Deterministic in (seed, epoch). The longest batch goes first so an out-of-memory shows at step 1.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    batches = []
    for start in range(0, len(order), batch_size * mega):
        chunk = order[start:start + batch_size * mega]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    if len(batches) > 1:
        longest = int(np.argmax([lengths[b].max() for b in batches]))
        rest = [b for i, b in enumerate(batches) if i != longest]
        perm = rng.permutation(len(rest))
        batches = [batches[longest]] + [rest[i] for i in perm]
    return batches


def sorted_batches(lengths: np.ndarray, batch_size: int, max_tokens: int | None = None) -> list[np.ndarray]:
    """Evaluation/prediction order: sorted by length, so padding is minimal. Callers restore order.

    `max_tokens`: a batch also holds at most this many padded tokens (rows × its longest row; at least one row), so
    the long rows come in smaller batches and the activations of one forward stay bounded."""
    order = np.argsort(-lengths, kind="stable")
    if not max_tokens:
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    out, i = [], 0
    while i < len(order):
        rows = min(batch_size, max(1, max_tokens // max(1, int(lengths[order[i]]))))
        out.append(order[i:i + rows])
        i += rows
    return out


def collate(data: Encoded, index: np.ndarray, pad_id: int) -> dict[str, torch.Tensor]:
    """Pad one batch to its own longest row."""
    rows = [data.input_ids[i] for i in index]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for j, r in enumerate(rows):
        ids[j, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[j, : len(r)] = 1
    batch = {"input_ids": ids, "attention_mask": mask}
    if data.labels is not None:
        batch["labels"] = torch.from_numpy(data.labels[index])
    return batch


def shuffled_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """Plain shuffled batches, deterministic in (seed, epoch): what a stock sampler gives."""
    order = np.random.default_rng([seed, epoch]).permutation(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


# Padded tokens one training forward holds at most with the split_long_batches lever. A length-grouped batch of 32
# rows × 128 tokens kept ~1.4 GB of activations on multilingual-e5-small (12 layers; ~0.34 MB a token at that
# length, over half of it attention); as micro-batches of 8 rows it keeps a quarter, for the same gradient.
# Measured (4,000 waimai_10k rows, 125 steps, batch 32, two runs each): peak RSS 3.42 GB unsplit, 2.71 GB at
# 2,048 tokens, 2.26-2.27 GB at 1,024; tokens/s 1,392 / 1,583-1,634 / 1,527-1,568. At 512 (250 steps, one run):
# 2.10 vs 2.33 GB at 1,024, but 1,353 vs 1,542 tokens/s. 1,024 stays the budget of a 6-layer encoder (minilm-l6);
# a deeper one keeps proportionally more activations per token, so it gets proportionally fewer tokens
# (`micro_batch_tokens`): multilingual-e5-small's 12 layers get 512, which issue 20's RSS bound needs on all of
# waimai_10k (docs/defaults.md has the side-by-side numbers).
LONG_BATCH_TOKENS, LONG_BATCH_LAYERS = 1024, 6


def micro_batch_tokens(layers: int | None) -> int:
    """Padded tokens per training micro-batch for an encoder of `layers` layers: `LONG_BATCH_TOKENS` at 6 layers or
    fewer, scaled down by depth above that (12 layers: 512), never under 128."""
    if not layers or layers <= LONG_BATCH_LAYERS:
        return LONG_BATCH_TOKENS
    return max(128, LONG_BATCH_TOKENS * LONG_BATCH_LAYERS // layers)


class LengthGroupedBatches:
    """Training data for the loop (classification): batches of an `Encoded`, padded per batch; length-grouped
    (the length_grouping lever) or, with `grouped=False`, plainly shuffled. `micro_tokens`: the loop runs a batch
    whose rows (this process's share) × longest row exceed it as micro-batches (gradient accumulation: the same
    gradient, less memory). `class_weights` (single-label): the loss is a weighted mean, so each micro-batch is
    weighed by its rows' class weights (`loss_weight`), not its row count, and the accumulated gradient stays the
    batch's."""

    def __init__(self, data: Encoded, pad_id: int, grouped: bool = True, micro_tokens: int | None = None,
                 class_weights: torch.Tensor | None = None):
        self.data, self.pad_id, self.grouped, self.micro_tokens = data, pad_id, grouped, micro_tokens
        self._lengths = data.lengths  # a property over every row: computed once, read every step
        if class_weights is not None:
            self.class_weights = torch.as_tensor(class_weights, dtype=torch.float64)
            self.loss_weight = self._class_weight_sum

    def _class_weight_sum(self, batch: dict) -> float:
        return float(self.class_weights[batch["labels"]].sum())

    def __len__(self) -> int:
        return len(self._lengths)  # training examples: rows here, pairs in `data.pairs.PairBatches`

    @property
    def lengths(self) -> np.ndarray:
        return self._lengths

    def batches(self, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
        if not self.grouped:
            return shuffled_batches(len(self), batch_size, seed, epoch)
        return length_grouped_batches(self.lengths, batch_size, seed, epoch)

    def collate(self, index: np.ndarray, epoch: int) -> dict[str, torch.Tensor]:
        return collate(self.data, index, self.pad_id)

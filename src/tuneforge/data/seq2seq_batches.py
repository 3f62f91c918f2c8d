"""Encoder-decoder data: pairs tokenized once per side, then batches cut by a token budget (source + target, padding
included), as translation systems batch: pairs of similar length together, so a batch of short sentences holds many
rows and a batch of long ones few, and neither pads much.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from tuneforge.errors import UserError

IGNORE = -100  # label positions the loss skips (padding)


@dataclass
class Seq2SeqEncoded:
    source_ids: list[list[int]]  # source tokens with the tokenizer's own specials (T5/Marian: ... </s>)
    target_ids: list[list[int]]  # target tokens + EOS (the labels)
    index: list[int]  # position of each kept pair in the split (for messages and outputs)
    too_long: list[int] = field(default_factory=list)  # positions left out (train) or cut (eval) for the caps

    def __len__(self) -> int:
        return len(self.source_ids)


def _ids(tokenizer, texts: list[str], target: bool, max_length: int | None = None) -> list[list[int]]:
    """One batched call of the (fast) tokenizer for one side; targets in target mode (`text_target`), so tokenizers
    with a separate target vocabulary or language code (Marian, mBART) encode them as their models expect."""
    if not texts:
        return []
    kwargs = {"add_special_tokens": True, "verbose": False, "return_attention_mask": False,
              "return_token_type_ids": False}
    if max_length:
        kwargs.update(truncation=True, max_length=max_length)
    enc = tokenizer(text_target=texts, **kwargs) if target else tokenizer(texts, **kwargs)
    return [list(x) for x in enc["input_ids"]]


def encode_pairs(tokenizer, sources: list[str], targets: list[str], max_source: int, max_target: int,
                 drop_long: bool) -> Seq2SeqEncoded:
    """Tokenize both sides. drop_long (training): pairs longer than a cap on either side are left out (counted in
    `too_long`). Else (validation/test): every pair is kept; the source is cut to `max_source` and the labels to
    `max_target` by the tokenizer's own truncation (its end token kept), and `too_long` lists the cut pairs."""
    if len(sources) != len(targets):
        raise ValueError(f"{len(sources)} sources but {len(targets)} targets")
    src, tgt = _ids(tokenizer, sources, False), _ids(tokenizer, targets, True)
    over = [i for i in range(len(src)) if len(src[i]) > max_source or len(tgt[i]) > max_target]
    if drop_long:
        out = set(over)
        keep = [i for i in range(len(src)) if i not in out]
        return Seq2SeqEncoded([src[i] for i in keep], [tgt[i] for i in keep], keep, over)
    # only the over-long pairs are tokenized again, with truncation (a handful, so encoding stays one pass)
    cut_src = [i for i in over if len(src[i]) > max_source]
    cut_tgt = [i for i in over if len(tgt[i]) > max_target]
    for i, ids in zip(cut_src, _ids(tokenizer, [sources[i] for i in cut_src], False, max_source)):
        src[i] = ids
    for i, ids in zip(cut_tgt, _ids(tokenizer, [targets[i] for i in cut_tgt], True, max_target)):
        tgt[i] = ids
    return Seq2SeqEncoded(src, tgt, list(range(len(src))), over)


def cut_by_tokens(order: np.ndarray, src_len: np.ndarray, tgt_len: np.ndarray, budget: int) -> list[np.ndarray]:
    """Consecutive runs of `order` whose padded size, rows × (longest source + longest target), stays ≤ `budget`.
    A pair that alone exceeds the budget gets a batch of its own (Seq2SeqBatches refuses such data up front)."""
    batches, start, top_s, top_t = [], 0, 0, 0
    s_list, t_list = src_len[order].tolist(), tgt_len[order].tolist()
    for k, (s, t) in enumerate(zip(s_list, t_list)):
        ns, nt = max(top_s, s), max(top_t, t)
        if k > start and (k - start + 1) * (ns + nt) > budget:
            batches.append(order[start:k])
            start, ns, nt = k, s, t
        top_s, top_t = ns, nt
    if start < len(order):
        batches.append(order[start:])
    return batches


class Seq2SeqBatches:
    """The loop's data protocol over encoded pairs, batched by tokens (`token_batches`: rows per batch vary).

    grouped (the length_grouping lever): pairs sorted by max(source, target) length, ties broken by seeded noise,
    cut by the budget, batch order shuffled; else shuffled pairs cut by the same budget. Either way every pair is in
    exactly one batch per epoch, and the batches are a pure function of (seed, epoch), so a resume is exact.
    """

    token_batches = True

    def __init__(self, data: Seq2SeqEncoded, pad_id: int, batch_tokens: int, grouped: bool = True):
        self.data, self.pad_id, self.batch_tokens, self.grouped = data, pad_id, batch_tokens, grouped
        self.src_len = np.fromiter((len(x) for x in data.source_ids), dtype=np.int64, count=len(data))
        self.tgt_len = np.fromiter((len(x) for x in data.target_ids), dtype=np.int64, count=len(data))
        self.lengths = self.src_len + self.tgt_len  # what the loop counts as training tokens
        longest = int(self.lengths.max()) if len(data) else 0
        if batch_tokens < longest:
            raise UserError(f"train.batch_tokens {batch_tokens:,} is smaller than the longest pair ({longest:,} tokens, "
                            f"source + target): raise train.batch_tokens to at least {longest:,} or lower "
                            "data.max_length / data.max_target_length.")

    def __len__(self) -> int:
        return len(self.data)

    def batches(self, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
        """`batch_size` is ignored: the token budget sets the rows. The batch with the most padded tokens goes first,
        so an out-of-memory shows at step 1 (as `length_grouped_batches` does)."""
        rng = np.random.default_rng([seed, epoch])
        if self.grouped:
            order = np.lexsort((rng.random(len(self)), np.maximum(self.src_len, self.tgt_len)))
        else:
            order = rng.permutation(len(self))
        batches = cut_by_tokens(order, self.src_len, self.tgt_len, self.batch_tokens)
        if len(batches) > 1:
            big = int(np.argmax([self.padded_tokens(b) for b in batches]))
            rest = [b for i, b in enumerate(batches) if i != big]
            batches = [batches[big]] + [rest[i] for i in rng.permutation(len(rest))]
        return batches

    def sorted_batches(self) -> list[np.ndarray]:
        """Evaluation order (held-out loss): longest first, cut by the same budget, no randomness."""
        order = np.lexsort((np.arange(len(self)), -np.maximum(self.src_len, self.tgt_len)))
        return cut_by_tokens(order, self.src_len, self.tgt_len, self.batch_tokens)

    def steps_per_epoch(self, seed: int = 0) -> int:
        return len(self.batches(0, seed, 0))

    def padded_tokens(self, index: np.ndarray) -> int:
        """rows × (longest source + longest target): the tokens a collated batch holds, padding included."""
        return len(index) * int(self.src_len[index].max() + self.tgt_len[index].max())

    @staticmethod
    def loss_weight(batch: dict[str, torch.Tensor]) -> int:
        """The target tokens in a collated batch: the loop weighs accumulated micro-batches by them."""
        return int((batch["labels"] != IGNORE).sum())

    def collate(self, index: np.ndarray, epoch: int) -> dict[str, torch.Tensor]:
        """Right-padded source ids + attention mask, and labels padded with IGNORE. The objective derives the
        decoder inputs from the labels with the model's own shift (each family starts its decoder its own way)."""
        n = len(index)
        ids = np.full((n, int(self.src_len[index].max())), self.pad_id, dtype=np.int64)
        mask = np.zeros(ids.shape, dtype=np.int64)
        labels = np.full((n, int(self.tgt_len[index].max())), IGNORE, dtype=np.int64)
        for j, i in enumerate(index):
            src, tgt = self.data.source_ids[i], self.data.target_ids[i]
            ids[j, :len(src)] = src
            mask[j, :len(src)] = 1
            labels[j, :len(tgt)] = tgt
        return {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask),
                "labels": torch.from_numpy(labels)}

"""Tokenize a corpus once into a memory-mapped token stream (cached by content hash), then pack fixed blocks.

Stream: each text's tokens followed by an end token ([SEP] for masked-LM, EOS for causal LMs). Masked-LM block i
is [CLS] + stream[i*(L-1):(i+1)*(L-1)]; causal block i is stream[i*L:(i+1)*L]. No padding at all either way.
A parallel uint8 stream marks word starts for whole-word masking. `segment_ids` (which text each token belongs
to) come from the end tokens; the model layer turns them into document attention (`model/documents.py`).
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tuneforge.data.masking import IGNORE, Masker, batch_generator
from tuneforge.data.words import word_starts

FORMAT = 1
CHUNK = 2000  # texts per tokenizer call


def default_cache_dir() -> Path:
    return Path(os.environ.get("TUNEFORGE_CACHE") or Path.home() / ".cache" / "tuneforge")


def tokenizer_fingerprint(tokenizer) -> str:
    return hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode("utf-8")).hexdigest()


def cache_key(source_hashes: list[str], params: dict, tokenizer) -> str:
    body = json.dumps({"format": FORMAT, "sources": source_hashes, "params": params,
                       "tokenizer": tokenizer_fingerprint(tokenizer)}, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()[:24]


def _word_starts(enc, i: int, text: str, whole_word: bool) -> list[int]:
    """1 where a token begins a word: the tokenizer's words; with `whole_word`, Chinese ones found by jieba."""
    word_ids = enc.word_ids(i)
    if whole_word:
        return word_starts(enc["offset_mapping"][i], word_ids, text)
    return [1 if k == 0 or w != word_ids[k - 1] else 0 for k, w in enumerate(word_ids)]


def build_token_stream(texts: Iterable[str], tokenizer, folder: Path, whole_word: bool,
                       on_chunk: Callable[[int], None] | None = None, end_id: int | None = None) -> dict:
    """Write tokens.bin / word_start.bin / meta.json into `folder` (created fresh); returns the meta. Each text
    ends with `end_id` (default: the tokenizer's [SEP])."""
    folder.mkdir(parents=True)
    dtype = np.uint16 if len(tokenizer) < 2**16 else np.uint32
    sep = tokenizer.sep_token_id if end_id is None else end_id
    n_tokens = n_docs = 0
    with open(folder / "tokens.bin", "wb") as ft, open(folder / "word_start.bin", "wb") as fw:
        batch: list[str] = []
        for text in itertools.chain(texts, [None]):  # streamed: the corpus is never held in memory
            if text is not None:
                batch.append(text)
                if len(batch) < CHUNK:
                    continue
            if not batch:
                break
            enc = tokenizer(batch, add_special_tokens=False, return_offsets_mapping=whole_word)
            ids, flags = [], []
            for i, t in enumerate(batch):
                ids += enc["input_ids"][i] + [sep]
                flags += _word_starts(enc, i, t, whole_word) + [1]
            ft.write(np.asarray(ids, dtype=dtype).tobytes())
            fw.write(np.asarray(flags, dtype=np.uint8).tobytes())
            n_tokens, n_docs = n_tokens + len(ids), n_docs + len(batch)
            if on_chunk:
                on_chunk(len(batch))
            batch = []
    meta = {"format": FORMAT, "tokens": n_tokens, "texts": n_docs, "dtype": np.dtype(dtype).name}
    (folder / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    return meta


def cached_token_stream(key: str, cache_root: Path, build: Callable[[Path], dict]) -> Path:
    """The cache folder for `key`, built through a temp folder and renamed, so a crash never leaves half a cache."""
    final = Path(cache_root) / "corpus" / key
    if (final / "meta.json").is_file():
        return final
    tmp = final.with_name(f".tmp-{key}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        build(tmp)
    except BaseException:  # also Ctrl-C: no half-built folder stays behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():  # a concurrent process finished first
        shutil.rmtree(tmp)
    else:
        os.replace(tmp, final)
    return final


@dataclass
class PackedCorpus:
    tokens: np.ndarray  # memory-mapped stream
    word_start: np.ndarray
    block_size: int
    cls_id: int | None  # None: blocks are plain slices of the stream (causal LM), no [CLS] in front

    @classmethod
    def open(cls, folder: Path, block_size: int, cls_id: int | None) -> PackedCorpus:
        meta = json.loads((Path(folder) / "meta.json").read_text(encoding="utf-8"))
        if meta["tokens"] == 0:  # an empty file cannot be memory-mapped
            return cls(np.zeros(0, dtype=meta["dtype"]), np.zeros(0, dtype=np.uint8), block_size, cls_id)
        tokens = np.memmap(Path(folder) / "tokens.bin", dtype=meta["dtype"], mode="r")
        word_start = np.memmap(Path(folder) / "word_start.bin", dtype=np.uint8, mode="r")
        return cls(tokens, word_start, block_size, cls_id)

    @property
    def body(self) -> int:
        """Stream tokens per block."""
        return self.block_size - (self.cls_id is not None)

    @property
    def n_blocks(self) -> int:
        return len(self.tokens) // self.body

    def blocks(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids, word starts) of shape (len(index), block_size), [CLS] first when the corpus has one."""
        body = self.body
        rows = np.stack([self.tokens[i * body:(i + 1) * body] for i in index]).astype(np.int64)
        starts = np.stack([self.word_start[i * body:(i + 1) * body] for i in index])
        if self.cls_id is None:
            return torch.from_numpy(rows), torch.from_numpy(starts)
        ids = np.concatenate([np.full((len(index), 1), self.cls_id), rows], axis=1)
        flags = np.concatenate([np.ones((len(index), 1), dtype=np.uint8), starts], axis=1)
        return torch.from_numpy(ids), torch.from_numpy(flags)

    def split(self, fraction: float, max_blocks: int) -> tuple[np.ndarray, np.ndarray]:
        """(train blocks, held-out blocks): a fixed random slice, the same for every seed and run."""
        order = np.random.default_rng(0).permutation(self.n_blocks)
        n_val = min(max_blocks, max(1, int(round(fraction * self.n_blocks))))
        return np.sort(order[n_val:]), np.sort(order[:n_val])


def segments_from_ends(ids: torch.Tensor, end_id: int) -> torch.Tensor:
    """(B, T) ids of the packed text each token belongs to; a text's end token closes its own text."""
    ends = (ids == end_id).long()
    return torch.cumsum(ends, dim=1) - ends


class _ShuffledBlocks:
    """What the loop needs of any block data: its size, the token count per row, and the shuffled batches."""

    corpus: PackedCorpus
    blocks: np.ndarray

    def __len__(self) -> int:
        return len(self.blocks)

    @property
    def lengths(self) -> np.ndarray:
        return np.full(len(self.blocks), self.corpus.block_size, dtype=np.int64)

    def batches(self, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
        order = np.random.default_rng([seed, epoch]).permutation(len(self.blocks))
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


class BlockBatches(_ShuffledBlocks):
    """Masked-LM training data for the loop: shuffled full blocks, masked afresh per (seed, epoch, batch).

    With `sep_id` the batch also carries `segment_ids`: which packed text each token belongs to (a text ends
    with its [SEP]), for attention kept within each text.
    """

    def __init__(self, corpus: PackedCorpus, blocks: np.ndarray, masker: Masker, seed: int, sep_id: int | None = None):
        self.corpus, self.blocks, self.masker, self.seed, self.sep_id = corpus, blocks, masker, seed, sep_id

    def collate(self, index: np.ndarray, epoch: int) -> dict[str, torch.Tensor]:
        ids, starts = self.corpus.blocks(self.blocks[index])
        inputs, labels = self.masker(ids, batch_generator(self.seed, epoch, self.blocks[index]), starts)
        batch = {"input_ids": inputs, "attention_mask": torch.ones_like(inputs), "labels": labels}
        if self.sep_id is not None:
            batch["segment_ids"] = segments_from_ends(ids, self.sep_id)
        return batch


class CausalBlocks(_ShuffledBlocks):
    """Causal-LM data for the loop: shuffled full blocks (no [CLS]), labels = the input ids (the loss shifts them).

    With `end_id` (document attention) the batch carries `segment_ids` (texts end with their EOS), and the first
    token of each text that starts inside a block gets label -100: it would otherwise be predicted from the text
    before it, so no loss crosses a document boundary. The EOS itself is a target (the model learns to end a
    text). Without `end_id` the block is one causal sequence, GPT-2 style (texts see the ones before them).
    """

    def __init__(self, corpus: PackedCorpus, blocks: np.ndarray, end_id: int | None = None):
        self.corpus, self.blocks, self.end_id = corpus, blocks, end_id

    def collate(self, index: np.ndarray, epoch: int = 0) -> dict[str, torch.Tensor]:
        ids, _ = self.corpus.blocks(self.blocks[index])
        labels = ids.clone()
        if self.end_id is None:
            return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
        segments = segments_from_ends(ids, self.end_id)
        labels[:, 1:][segments[:, 1:] != segments[:, :-1]] = IGNORE
        return {"input_ids": ids, "labels": labels, "segment_ids": segments}

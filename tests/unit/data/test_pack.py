"""Token stream, its cache, fixed-size blocks, the held-out split and masked batches."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from tuneforge.data import pack
from tuneforge.data.masking import IGNORE, Masker
from tuneforge.data.pack import (
    BlockBatches,
    PackedCorpus,
    build_token_stream,
    cache_key,
    cached_token_stream,
    default_cache_dir,
)
from tuneforge.data.tokenizer_train import train_tokenizer

WORDS = ["river", "mountain", "teacher", "student", "garden", "window", "market", "village", "forest", "ocean",
         "computer", "library", "bright", "ancient", "quietly", "builds", "paints", "follows", "the", "a", "near"]
ZH = ["我爱北京天安门", "北京是中国的首都", "今天天气很好"]
BLOCK = 16


def make_texts(n: int = 120, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(3, 12))) for _ in range(n)] + ZH


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return make_texts()


@pytest.fixture(scope="module")
def tok(texts):
    # a small vocabulary, so many words are split into ## pieces
    return train_tokenizer(texts * 2, "wordpiece", vocab_size=120, min_frequency=2)


@pytest.fixture(scope="module")
def stream(tok, texts, tmp_path_factory):
    folder = tmp_path_factory.mktemp("stream") / "s"
    meta = build_token_stream(iter(texts), tok, folder, whole_word=False)
    return folder, meta


def expected_stream(tok, texts) -> list[int]:
    out = []
    for t in texts:
        out += tok(t, add_special_tokens=False)["input_ids"] + [tok.sep_token_id]
    return out


def test_stream_is_each_text_then_sep(tok, texts, stream):
    folder, meta = stream
    tokens = np.fromfile(folder / "tokens.bin", dtype=meta["dtype"])
    assert tokens.tolist() == expected_stream(tok, texts)
    assert meta["tokens"] == len(tokens) and meta["texts"] == len(texts)
    assert meta["dtype"] == "uint16"
    assert json.loads((folder / "meta.json").read_text(encoding="utf-8")) == meta
    flags = np.fromfile(folder / "word_start.bin", dtype=np.uint8)
    assert len(flags) == len(tokens)
    # word starts: every [SEP] and every text start is 1, ## continuation pieces are 0, other tokens 1
    pieces = tok.convert_ids_to_tokens(tokens.tolist())
    assert [int(not p.startswith("##")) for p in pieces] == flags.tolist()
    assert any(p.startswith("##") for p in pieces)


def test_stream_is_the_same_across_chunks(tok, texts, tmp_path, monkeypatch):
    monkeypatch.setattr(pack, "CHUNK", 7)
    chunks = []
    meta = build_token_stream(iter(texts), tok, tmp_path / "s", whole_word=False, on_chunk=chunks.append)
    assert np.fromfile(tmp_path / "s" / "tokens.bin", dtype=meta["dtype"]).tolist() == expected_stream(tok, texts)
    assert sum(chunks) == len(texts) and max(chunks) == 7 and len(chunks) == -(-len(texts) // 7)


def test_stream_reads_texts_as_it_goes(tok, texts, tmp_path, monkeypatch):
    """The first chunk is tokenized before the whole corpus has been read (a corpus need not fit in RAM)."""
    monkeypatch.setattr(pack, "CHUNK", 7)
    consumed = []

    def gen():
        for i, t in enumerate(texts):
            consumed.append(i)
            yield t

    seen_at_first_chunk = []
    build_token_stream(gen(), tok, tmp_path / "s", whole_word=False,
                       on_chunk=lambda n: seen_at_first_chunk.append(len(consumed)))
    assert len(consumed) == len(texts)
    assert seen_at_first_chunk[0] <= 8, f"{seen_at_first_chunk[0]} texts read before the first chunk of 7"


def test_empty_stream(tok, tmp_path):
    meta = build_token_stream(iter([]), tok, tmp_path / "s", whole_word=False)
    assert (meta["tokens"], meta["texts"]) == (0, 0)
    assert (tmp_path / "s" / "tokens.bin").stat().st_size == 0


def test_empty_stream_opens_with_no_blocks(tok, tmp_path):
    build_token_stream(iter([]), tok, tmp_path / "s", whole_word=False)
    assert PackedCorpus.open(tmp_path / "s", BLOCK, tok.cls_token_id).n_blocks == 0


def test_blocks_pack_the_stream_without_padding(tok, stream):
    folder, meta = stream
    corpus = PackedCorpus.open(folder, BLOCK, tok.cls_token_id)
    n = corpus.n_blocks
    assert n == meta["tokens"] // (BLOCK - 1) and n > 10
    ids, starts = corpus.blocks(np.arange(n))
    assert ids.shape == (n, BLOCK) and starts.shape == (n, BLOCK)
    assert ids.dtype == torch.int64
    assert (ids[:, 0] == tok.cls_token_id).all() and (starts[:, 0] == 1).all()
    stream_ids = np.fromfile(folder / "tokens.bin", dtype=meta["dtype"])
    assert ids[:, 1:].reshape(-1).tolist() == stream_ids[: n * (BLOCK - 1)].tolist()  # only the tail is dropped
    assert meta["tokens"] - n * (BLOCK - 1) < BLOCK - 1
    assert tok.pad_token_id not in ids.tolist()
    flags = np.fromfile(folder / "word_start.bin", dtype=np.uint8)
    assert starts[:, 1:].reshape(-1).tolist() == flags[: n * (BLOCK - 1)].tolist()
    # any subset, in any order
    some, _ = corpus.blocks(np.array([3, 0]))
    assert torch.equal(some, ids[[3, 0]])


def test_split_is_disjoint_complete_and_fixed(tok, stream):
    corpus = PackedCorpus.open(stream[0], BLOCK, tok.cls_token_id)
    n = corpus.n_blocks
    train, val = corpus.split(0.2, max_blocks=1000)
    assert len(val) == round(0.2 * n)
    assert not set(train) & set(val)
    assert sorted([*train, *val]) == list(range(n))
    assert list(train) == sorted(train) and list(val) == sorted(val)
    again = corpus.split(0.2, max_blocks=1000)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], val)
    train2, val2 = corpus.split(0.2, max_blocks=2)
    assert len(val2) == 2 and len(train2) == n - 2
    assert sorted([*train2, *val2]) == list(range(n))
    assert len(corpus.split(0.0001, max_blocks=10)[1]) == 1  # at least one held-out block


def test_cached_token_stream_builds_once(tmp_path):
    calls = []

    def build(folder):
        calls.append(folder)
        folder.mkdir(parents=True)
        (folder / "tokens.bin").write_bytes(b"")
        (folder / "meta.json").write_text("{}", encoding="utf-8")
        return {}

    first = cached_token_stream("k1", tmp_path, build)
    second = cached_token_stream("k1", tmp_path, build)
    assert first == second == tmp_path / "corpus" / "k1"
    assert len(calls) == 1 and calls[0] != first  # built elsewhere, then moved into place
    assert (first / "meta.json").is_file()
    assert [p.name for p in (tmp_path / "corpus").iterdir()] == ["k1"]  # no .tmp- folder left
    cached_token_stream("k2", tmp_path, build)
    assert len(calls) == 2
    assert sorted(p.name for p in (tmp_path / "corpus").iterdir()) == ["k1", "k2"]


def test_cached_token_stream_failed_build_leaves_no_cache(tmp_path):
    def broken(folder):
        folder.mkdir(parents=True)
        (folder / "tokens.bin").write_bytes(b"\x00" * 10)
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        cached_token_stream("k", tmp_path, broken)
    assert not (tmp_path / "corpus" / "k").exists()
    assert list((tmp_path / "corpus").iterdir()) == []  # nor a half-built temp folder

    def good(folder):
        folder.mkdir(parents=True)
        (folder / "meta.json").write_text("{}", encoding="utf-8")
        return {}

    assert (cached_token_stream("k", tmp_path, good) / "meta.json").is_file()


def test_cached_token_stream_with_the_real_builder(tok, texts, tmp_path):
    folder = cached_token_stream("real", tmp_path, lambda f: build_token_stream(iter(texts), tok, f, False))
    corpus = PackedCorpus.open(folder, BLOCK, tok.cls_token_id)
    assert corpus.n_blocks == len(expected_stream(tok, texts)) // (BLOCK - 1)


def test_cache_key_tracks_its_inputs(tok, texts):
    params = {"text_column": "text", "normalize": True, "dedup": True, "min_chars": 10, "max_chars": None,
              "whole_word": False}
    key = cache_key(["abc"], params, tok)
    assert key == cache_key(["abc"], dict(reversed(params.items())), tok)  # order of params is irrelevant
    assert len(key) == 24
    for change in ({"min_chars": 5}, {"normalize": False}, {"dedup": False}, {"max_chars": 100},
                   {"whole_word": True}, {"text_column": "body"}):
        assert cache_key(["abc"], {**params, **change}, tok) != key, change
    assert cache_key(["abd"], params, tok) != key
    assert cache_key(["abc", "def"], params, tok) != key
    other = train_tokenizer(texts, "wordpiece", vocab_size=100)
    assert cache_key(["abc"], params, other) != key
    cased = train_tokenizer(texts * 2, "wordpiece", vocab_size=120, lowercase=False)
    assert cache_key(["abc"], params, cased) != key


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("TUNEFORGE_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("TUNEFORGE_CACHE")
    assert default_cache_dir().parts[-2:] == (".cache", "tuneforge")


@pytest.fixture
def batches(tok, stream):
    corpus = PackedCorpus.open(stream[0], BLOCK, tok.cls_token_id)
    train, _ = corpus.split(0.1, 100)
    masker = Masker(len(tok), tok.all_special_ids, tok.mask_token_id, 0.15)
    return BlockBatches(corpus, train, masker, seed=3)


def test_block_batches_collate(tok, batches):
    index = np.arange(8)
    batch = batches.collate(index, epoch=0)
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    assert batch["input_ids"].shape == (8, BLOCK) == batch["labels"].shape == batch["attention_mask"].shape
    assert (batch["attention_mask"] == 1).all()
    original, _ = batches.corpus.blocks(batches.blocks[index])
    selected = batch["labels"] != IGNORE
    assert selected.any()
    assert torch.equal(batch["labels"][selected], original[selected])
    assert torch.equal(batch["input_ids"][~selected], original[~selected])
    assert (batch["input_ids"][:, 0] == tok.cls_token_id).all()


def test_block_batches_segment_ids_follow_the_seps(tok, batches):
    index = np.arange(8)
    with_segments = BlockBatches(batches.corpus, batches.blocks, batches.masker, seed=3, sep_id=tok.sep_token_id)
    batch = with_segments.collate(index, epoch=0)
    assert torch.equal(batch["input_ids"], batches.collate(index, epoch=0)["input_ids"])  # same masks as without
    original, _ = batches.corpus.blocks(batches.blocks[index])
    seg = batch["segment_ids"]
    assert seg.shape == original.shape and (seg[:, 0] == 0).all()
    step = seg[:, 1:] - seg[:, :-1]
    assert set(step.unique().tolist()) <= {0, 1}
    # a new text starts exactly after each [SEP]; the [SEP] itself closes the text before it
    assert torch.equal(step == 1, original[:, :-1] == tok.sep_token_id)
    assert (seg.max(dim=1).values > 0).any()


def test_block_batches_masks_are_fixed_per_index_and_epoch(batches):
    index = np.arange(12)
    a = batches.collate(index, epoch=0)
    b = batches.collate(index.copy(), epoch=0)
    c = batches.collate(index, epoch=1)
    assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["labels"], b["labels"])
    assert not torch.equal(a["labels"], c["labels"])
    reseeded = BlockBatches(batches.corpus, batches.blocks, batches.masker, seed=4).collate(index, epoch=0)
    assert not torch.equal(a["labels"], reseeded["labels"])


def test_block_batches_order(batches):
    assert len(batches) == len(batches.blocks)
    assert (batches.lengths == BLOCK).all() and len(batches.lengths) == len(batches)
    order = batches.batches(5, seed=1, epoch=0)
    flat = np.concatenate(order)
    assert sorted(flat.tolist()) == list(range(len(batches)))
    assert all(len(b) == 5 for b in order[:-1])
    assert all(np.array_equal(x, y) for x, y in zip(order, batches.batches(5, seed=1, epoch=0), strict=True))
    assert not np.array_equal(flat, np.concatenate(batches.batches(5, seed=1, epoch=1)))


def _stream_for(tok, text, tmp_path, whole_word):
    folder = tmp_path / f"ww-{whole_word}"
    build_token_stream(iter([text]), tok, folder, whole_word=whole_word)
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    ids = np.fromfile(folder / "tokens.bin", dtype=meta["dtype"]).tolist()
    flags = np.fromfile(folder / "word_start.bin", dtype=np.uint8).tolist()
    return ids, flags


def test_whole_word_groups_chinese_characters_into_jieba_words(tok, tmp_path):
    pytest.importorskip("jieba")
    text = "我爱北京天安门"  # jieba: 我 / 爱 / 北京 / 天安门
    ids, flags = _stream_for(tok, text, tmp_path, whole_word=True)
    assert tok.convert_ids_to_tokens(ids) == [*text, "[SEP]"]
    assert flags == [1, 1, 1, 0, 1, 0, 0, 1]
    # without whole-word masking every character is a word of its own
    assert _stream_for(tok, text, tmp_path, whole_word=False)[1] == [1] * 8


def test_whole_word_keeps_english_subword_grouping(tok, tmp_path):
    pytest.importorskip("jieba")
    text = "the ancient library 北京 computer"
    ids, flags = _stream_for(tok, text, tmp_path, whole_word=True)
    pieces = tok.convert_ids_to_tokens(ids)
    expected = [0 if p.startswith("##") else 1 for p in pieces]
    expected[pieces.index("京")] = 0
    assert flags == expected


def test_whole_word_with_byte_level_bpe(texts, tmp_path):
    pytest.importorskip("jieba")
    bpe = train_tokenizer(texts * 2, "bpe", vocab_size=300)
    text = "我爱北京"  # 我 / 爱 / 北京; each character is several byte tokens
    ids, flags = _stream_for(bpe, text, tmp_path, whole_word=True)
    enc = bpe(text, add_special_tokens=False, return_offsets_mapping=True)
    assert ids[:-1] == enc["input_ids"] and ids[-1] == bpe.sep_token_id
    starts_at = {0, 1, 2}  # character offsets where a word starts
    expected = []
    for k, (s, _) in enumerate(enc["offset_mapping"]):
        first_of_char = k == 0 or enc["offset_mapping"][k - 1][0] != s
        expected.append(int(first_of_char and s in starts_at))
    assert flags == [*expected, 1]
    assert sum(flags[:-1]) == 3

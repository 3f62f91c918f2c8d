"""Causal packing: texts joined by EOS into plain blocks, labels that never cross a text boundary, and document
attention that makes a packed block's loss exactly the sum of its texts' losses computed one by one."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from conftest import fp_tolerance
from tuneforge.data.masking import IGNORE
from tuneforge.data.pack import CausalBlocks, PackedCorpus, build_token_stream
from tuneforge.data.tokenizer_train import train_tokenizer

WORDS = ["river", "mountain", "teacher", "student", "garden", "window", "market", "village", "forest", "ocean",
         "The", "A", "near", "quietly", "builds", "paints", "follows", "bright", "ancient", "."]


def make_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(2, 9))) for _ in range(n)]


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: tiny matmuls on two threads shared with other work spin far longer than they compute."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(make_texts(200) * 2, "gpt", vocab_size=300, lowercase=False)


def pack(tok, texts: list[str], folder, block_size: int) -> PackedCorpus:
    build_token_stream(iter(texts), tok, folder, whole_word=False, end_id=tok.eos_token_id)
    return PackedCorpus.open(folder, block_size, None)


def test_gpt_tokenizer_has_only_endoftext_and_keeps_case(tok):
    assert tok.eos_token == tok.bos_token == tok.pad_token == "<|endoftext|>"
    assert tok.all_special_tokens == ["<|endoftext|>"]
    assert tok.mask_token is None and tok.cls_token is None and tok.sep_token is None
    ids = tok("The river")["input_ids"]
    assert tok.eos_token_id not in ids  # nothing added around a text: the stream appends EOS itself
    assert tok.decode(ids) == "The river"  # byte-level and cased: decodes back exactly


def test_stream_joins_texts_with_eos_and_blocks_are_plain_slices(tok, tmp_path):
    texts = make_texts(30, 1)
    corpus = pack(tok, texts, tmp_path / "s", block_size=16)
    expected = [i for t in texts for i in tok(t)["input_ids"] + [tok.eos_token_id]]
    assert corpus.tokens.tolist() == expected
    assert corpus.n_blocks == len(expected) // 16  # no [CLS]: every block position is stream text
    ids, _ = corpus.blocks(np.array([0, 2]))
    assert ids.tolist() == [expected[0:16], expected[32:48]]


def test_labels_never_cross_a_document_boundary(tok, tmp_path):
    corpus = pack(tok, make_texts(60, 2), tmp_path / "s", block_size=24)
    batch = CausalBlocks(corpus, np.arange(corpus.n_blocks), tok.eos_token_id).collate(np.arange(corpus.n_blocks))
    ids, labels, seg = batch["input_ids"], batch["labels"], batch["segment_ids"]
    scored = labels[:, 1:] != IGNORE  # position t predicts label t + 1
    # every target is the next token of the same text; every text start inside a block is not a target
    assert torch.equal(scored, seg[:, 1:] == seg[:, :-1])
    assert torch.equal(labels[:, 1:][scored], ids[:, 1:][scored])
    eos = ids[:, 1:] == tok.eos_token_id
    assert bool(scored[eos].all())  # ending a text is learned
    assert int((~scored).sum()) == int((seg[:, 1:] != seg[:, :-1]).sum()) > 10
    plain = CausalBlocks(corpus, np.arange(corpus.n_blocks)).collate(np.arange(corpus.n_blocks))
    assert "segment_ids" not in plain and torch.equal(plain["labels"], ids)  # GPT-2 style: one sequence per block


def _tiny_llama(tok, attn: str):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                      attn_implementation=attn)
    return LlamaForCausalLM(cfg).eval()


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_block_loss_equals_the_per_document_losses(tok, tmp_path, attn):
    from tuneforge.train.objectives import make_objective

    texts = make_texts(5, 3)
    docs = [tok(t)["input_ids"] + [tok.eos_token_id] for t in texts]
    total = sum(map(len, docs))
    corpus = pack(tok, texts, tmp_path / "s", block_size=total)  # one block holding exactly these texts
    model = _tiny_llama(tok, attn)
    step = make_objective("clm")
    with torch.no_grad():
        packed, _ = step(model, CausalBlocks(corpus, np.array([0]), tok.eos_token_id).collate(np.array([0])))
        alone_sum, alone_n = 0.0, 0
        for d in docs:  # each text alone, at the start of its own row, no mask at all
            ids = torch.tensor([d])
            logits = model(input_ids=ids).logits[0, :-1]
            alone_sum += torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum").item()
            alone_n += len(d) - 1
        mixed, _ = step(model, CausalBlocks(corpus, np.array([0])).collate(np.array([0])))
    expected = alone_sum / alone_n
    # rounding bound: fp32 sums over the block's tokens and the model's widest reduction (the vocabulary)
    assert packed.item() == pytest.approx(expected, rel=fp_tolerance(torch.float32, len(tok)))
    # without document attention the texts see each other: a different loss (so the check above is not vacuous)
    assert abs(mixed.item() - expected) > 1e-3

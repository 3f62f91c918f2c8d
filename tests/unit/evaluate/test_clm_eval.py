"""Held-out causal-LM evaluation: streamed sums, the same over packed or padded rows and over any number of ranks."""
from __future__ import annotations

import math

import pytest
import torch

from conftest import fp_tolerance
from sft_helpers import FFN, HIDDEN, VOCAB, build_tiny_chat_lm, sentiment_rows
from tuneforge.data.sft import Chat, encode_chats
from tuneforge.data.sft_pack import SftBatches
from tuneforge.evaluate.clm import evaluate_clm


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from tuneforge.model.causal import load_causal_lm, load_causal_tokenizer

    folder = build_tiny_chat_lm(tmp_path_factory.mktemp("clm-eval") / "lm")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    tok = load_causal_tokenizer(str(folder))
    chats = [Chat([{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["response"]}], i)
             for i, r in enumerate(sentiment_rows(21))]
    yield tok, load_causal_lm(str(folder)), encode_chats(tok, chats, 128)
    torch.set_num_threads(threads)


def test_packed_padded_and_sharded_evaluations_agree(setup):
    tok, model, enc = setup
    model.train()
    padded = evaluate_clm(model, SftBatches(enc, tok.pad_token_id, packed=False, capacity=128), batch_size=4)
    assert model.training  # put back as it was
    packed_data = SftBatches(enc, tok.pad_token_id, packed=True, capacity=128)
    packed = evaluate_clm(model, packed_data, batch_size=2)
    assert padded["tokens"] == packed["tokens"] == packed_data.label_tokens
    tol = fp_tolerance(torch.float32, padded["tokens"] + 2 * (HIDDEN + FFN) + VOCAB)
    assert packed["loss"] == pytest.approx(padded["loss"], rel=tol, abs=1e-5)  # abs: rounded to 5 places
    assert padded["perplexity"] == pytest.approx(math.exp(padded["loss"]), rel=1e-4)
    # two ranks, each every other batch, counts summed by `reduce`: the one-process numbers
    halves = []
    for rank in (0, 1):
        def keep(t, rank=rank):
            halves.append(t.clone())
            return t
        evaluate_clm(model, packed_data, batch_size=1, rank=rank, world=2, reduce=keep)
    total, n = (halves[0] + halves[1]).tolist()
    assert n == packed["tokens"] and 0 < halves[0][1] < n
    assert total / n == pytest.approx(packed["loss"], rel=tol, abs=1e-5)

"""The batched engine against transformers' own `generate`: greedy token-for-token (any batch composition, joins
mid-batch, early finishers), both forwards (fused Llama and the model's own), GPT-2 / GPT-Neo, repetition penalty,
seeded sampling, stop strings, max_new_tokens, EOS and cancel."""
from __future__ import annotations

import pytest
import torch

from tuneforge.generate.decode import generate, run
from tuneforge.generate.engine import Engine
from tuneforge.generate.settings import GenerationSettings

PROMPTS = ["the movie was", "hello world! how are you today? I am", "今天天气很好", "a",
           "translate to German: the"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matrices gain nothing from a second thread, and a busy machine makes a second thread cost a lot."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def lm(tiny_causal_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_causal_dir).eval(), AutoTokenizer.from_pretrained(tiny_causal_dir)


def reference(model, ids: list[int], new: int, **kw) -> list[int]:
    """transformers' greedy continuation (EOS off: the engine is told the same)."""
    with torch.inference_mode():
        out = model.generate(torch.tensor([ids]), max_new_tokens=new, do_sample=False, eos_token_id=None,
                             pad_token_id=0, **kw)
    return out[0, len(ids):].tolist()


def engine(lm, max_batch=8, fast=True) -> Engine:
    e = Engine(*lm, max_batch=max_batch, fast=fast)
    e.eos = set()  # random tiny weights emit EOS at arbitrary places; compared with generate(eos_token_id=None)
    return e


@pytest.fixture(scope="module")
def ids(lm):
    return [lm[1](p)["input_ids"] for p in PROMPTS]


@pytest.fixture(scope="module")
def greedy(lm, ids):
    return [reference(lm[0], i, 12) for i in ids]


@pytest.mark.parametrize("fast, threads", [(True, 1), (True, 2), (False, 1)],
                         ids=["fused", "fused-column-blocks", "transformers-forward"])
def test_greedy_matches_generate_in_any_batch(lm, ids, greedy, fast, threads, monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)  # 2: matrices in 2 column blocks (bmm)
    monkeypatch.setattr("tuneforge.generate.fused_llama.BLOCK_MIN", 0)  # tiny matrices too
    e = engine(lm, fast=fast)
    assert not fast or e.forward.layers[0]["qkv"].dim() == (3 if threads == 2 else 2)
    assert e.forward.name == ("fused-llama" if fast else "transformers")
    together = run(e, ids, GenerationSettings(max_new_tokens=12))
    assert [c.token_ids for c in together] == greedy
    assert all(c.finish_reason == "length" and c.completion_tokens == 12 for c in together)
    # Two at a time: each finished row is replaced by a waiting one, which joins a batch already decoding.
    two = run(engine(lm, max_batch=2, fast=fast), ids, GenerationSettings(max_new_tokens=12))
    assert [c.token_ids for c in two] == greedy


def test_rows_finishing_early_and_joining_late_do_not_change_the_others(lm, ids, greedy):
    e = engine(lm, max_batch=4)
    budgets = [12, 3, 12, 5, 12]
    first = {e.add(i, GenerationSettings(max_new_tokens=b)): k for k, (i, b) in enumerate(zip(ids[:3], budgets))}
    out = {k: [] for k in range(len(ids))}
    for _ in range(4):  # row 1 finishes after 3 tokens while rows 0 and 2 keep going
        for ev in e.step():
            out[first[ev.seq_id]] += ev.token_ids
    late = {e.add(i, GenerationSettings(max_new_tokens=b)): k + 3 for k, (i, b) in enumerate(zip(ids[3:], budgets[3:]))}
    first.update(late)
    while e.active:
        for ev in e.step():
            out[first[ev.seq_id]] += ev.token_ids
    assert [out[k] for k in range(len(ids))] == [g[:b] for g, b in zip(greedy, budgets)]
    assert e.store is None and not e.rows  # everything left the batch


@pytest.mark.parametrize("family", ["gpt2", "gpt_neo"])
def test_other_families_use_their_own_forward_and_match(family, lm):
    from transformers import GPT2Config, GPT2LMHeadModel, GPTNeoConfig, GPTNeoForCausalLM

    torch.manual_seed(0)
    if family == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(vocab_size=400, n_embd=32, n_layer=2, n_head=4, n_positions=128,
                                           initializer_range=0.1))
    else:
        model = GPTNeoForCausalLM(GPTNeoConfig(vocab_size=400, hidden_size=32, num_layers=2, num_heads=4,
                                               attention_types=[[["global", "local"], 1]], window_size=8,
                                               max_position_embeddings=128, initializer_range=0.1))
    model.eval()
    prompts = [lm[1](p)["input_ids"] for p in PROMPTS[:3]]
    e = Engine(model, lm[1], max_batch=3)
    e.eos = set()
    assert e.forward.name == "transformers"
    got = [c.token_ids for c in run(e, prompts, GenerationSettings(max_new_tokens=10))]
    assert got == [reference(model, p, 10) for p in prompts]


def test_repetition_penalty_matches_generate(lm, ids):
    e = engine(lm)
    got = run(e, ids[:2], GenerationSettings(max_new_tokens=10, repetition_penalty=1.5))
    assert [c.token_ids for c in got] == [reference(lm[0], i, 10, repetition_penalty=1.5) for i in ids[:2]]


def test_seeded_sampling_is_reproducible_and_batch_independent(lm, ids):
    s = GenerationSettings(max_new_tokens=16, temperature=1.0, top_p=0.9, top_k=50, seed=7)
    alone = run(engine(lm), [ids[0]], s)[0].token_ids
    others = [GenerationSettings(max_new_tokens=16, temperature=0.8, seed=1), s, GenerationSettings(max_new_tokens=16)]
    crowded = run(engine(lm), [ids[1], ids[0], ids[2]], others)[1].token_ids
    assert alone == crowded
    other = run(engine(lm), [ids[0]], GenerationSettings(max_new_tokens=16, temperature=1.0, seed=8))[0].token_ids
    assert other != alone
    top1 = run(engine(lm), [ids[0]], GenerationSettings(max_new_tokens=16, temperature=1.0, top_k=1, seed=3))
    assert top1[0].token_ids == reference(lm[0], ids[0], 16)  # top-k 1 leaves only the argmax


def test_stop_string_is_trimmed_and_ends_the_sequence(lm, ids):
    full = run(engine(lm), [ids[2]], GenerationSettings(max_new_tokens=24))[0]
    assert len(full.text) > 6
    stop = full.text[4:6]
    got = run(engine(lm), [ids[2]], GenerationSettings(max_new_tokens=24, stop=("never-there", stop)))[0]
    assert got.finish_reason == "stop"
    assert got.text == full.text[:full.text.index(stop)]
    assert got.completion_tokens < 24


def test_eos_ends_with_stop_and_is_not_in_the_text(lm, ids, greedy):
    e = engine(lm)
    e.eos = {greedy[0][3]}
    got = run(e, [ids[0]], GenerationSettings(max_new_tokens=12))[0]
    cut = greedy[0].index(greedy[0][3]) + 1
    assert got.token_ids == greedy[0][:cut] and got.finish_reason == "stop"
    assert got.text == lm[1].decode(greedy[0][:cut - 1], skip_special_tokens=True)


def test_cancel_stops_one_sequence_and_not_the_others(lm, ids, greedy):
    e = engine(lm)
    a, b = e.add(ids[0], GenerationSettings(max_new_tokens=12)), e.add(ids[1], GenerationSettings(max_new_tokens=12))
    tokens = {a: [], b: []}
    for _ in range(3):
        for ev in e.step():
            tokens[ev.seq_id] += ev.token_ids
    e.cancel(a)
    events = {ev.seq_id: ev for ev in e.step()}
    assert events[a].finished and events[a].finish_reason == "cancelled" and events[a].token_ids == []
    tokens[b] += events[b].token_ids
    while e.active:
        for ev in e.step():
            assert ev.seq_id == b
            tokens[b] += ev.token_ids
    assert tokens[a] == greedy[0][:len(tokens[a])] and len(tokens[a]) < 12
    assert tokens[b] == greedy[1]
    waiting = e.add(ids[2], GenerationSettings())  # cancelled before it joined
    e.cancel(waiting)
    assert [(ev.seq_id, ev.finish_reason) for ev in e.step()] == [(waiting, "cancelled")] and e.active == 0


def test_generate_counts_and_context_limit(lm):
    model, tokenizer = lm
    [c] = generate(model, tokenizer, ["the movie was"], GenerationSettings(max_new_tokens=5))
    assert c.prompt_tokens == len(tokenizer("the movie was")["input_ids"]) and 1 <= c.completion_tokens <= 5
    e = Engine(model, tokenizer)
    seq = e.add(list(range(3, 253)), GenerationSettings(max_new_tokens=50))  # 250 of the 256 positions
    made = [t for _ in range(20) for ev in e.step() if ev.seq_id == seq for t in ev.token_ids]
    assert len(made) <= 6 and e.active == 0  # the context ended it, not max_new_tokens


@pytest.mark.parametrize("threads", [1, 2], ids=["views", "column-blocks"])
def test_shared_weights_are_reused_until_the_model_changes(lm, ids, greedy, threads, monkeypatch):
    import copy

    from tuneforge.generate.fused_llama import PACK, share_weights

    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    monkeypatch.setattr("tuneforge.generate.fused_llama.BLOCK_MIN", 0)  # tiny matrices too
    model = copy.deepcopy(lm[0]).requires_grad_(False)  # frozen, as load_text_generator leaves it
    share_weights(model)
    pack = getattr(model, PACK)
    assert model.lm_head.weight is model.model.embed_tokens.weight  # still tied
    q = model.model.layers[0].self_attn.q_proj.weight
    assert (q.data_ptr() == pack["layers"][0]["qkv"].data_ptr()) == (threads == 1)  # one thread: a view, no copy
    assert reference(model, ids[1], 12) == greedy[1]  # transformers' own forward on the (rebound) weights
    e = Engine(model, lm[1])
    e.eos = set()
    assert e.forward.layers is pack["layers"]  # reused, not fused again
    assert [c.token_ids for c in run(e, ids, GenerationSettings(max_new_tokens=12))] == greedy
    with torch.no_grad():
        model.model.layers[1].mlp.down_proj.weight.mul_(1.0)  # an optimizer step: same values, new version
    assert Engine(model, lm[1]).forward.layers is not pack["layers"]
    model.requires_grad_(True)  # trainable: a fused optimizer step bumps no version, so the pack is never reused
    assert Engine(model, lm[1]).forward.layers is not pack["layers"]

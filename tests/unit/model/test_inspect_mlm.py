"""MLM presets and models, the sparse MLM head, parameter/FLOP accounting and the model tree."""
from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from conftest import fp_tolerance
from tuneforge.data.tokenizer_train import train_tokenizer
from tuneforge.errors import UserError
from tuneforge.model import inspect
from tuneforge.model.mlm import PRESETS, SparseMLM, build_mlm, preset_config

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "theta", "kappa", "lambda", "omega", "river", "stone"]
SEQ = 24


@pytest.fixture(scope="module")
def tok():
    rng = random.Random(0)
    return train_tokenizer([" ".join(rng.choices(WORDS, k=8)) for _ in range(200)], "wordpiece", vocab_size=150)


@pytest.fixture(scope="module")
def tiny(tok):
    torch.manual_seed(0)
    return build_mlm("tiny", tok, max_position=64).eval()


def test_presets_sizes():
    expected = {"tiny": (2, 128), "mini": (4, 256), "small": (4, 512), "medium": (8, 512), "base": (12, 768)}
    assert {k: (v["num_hidden_layers"], v["hidden_size"]) for k, v in PRESETS.items()} == expected
    for p in PRESETS.values():  # heads of 64 dims, FFN 4× hidden
        assert p["hidden_size"] == 64 * p["num_attention_heads"]
        assert p["intermediate_size"] == 4 * p["hidden_size"]


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_config(tok, name):
    cfg = preset_config(name, tok, max_position=256)
    assert cfg.vocab_size == len(tok)
    assert cfg.pad_token_id == tok.pad_token_id
    assert cfg.max_position_embeddings == 256
    for key, value in PRESETS[name].items():
        assert getattr(cfg, key) == value


def test_preset_config_pad_id_of_a_bpe_tokenizer():
    bpe = train_tokenizer([" ".join(WORDS)] * 20, "bpe", vocab_size=300)
    assert preset_config("tiny", bpe).pad_token_id == bpe.pad_token_id == 1


def test_unknown_preset_is_a_user_error(tok):
    with pytest.raises(UserError, match="huge"):
        preset_config("huge", tok)


def test_build_mlm(tok, tiny):
    from transformers import BertForMaskedLM

    assert isinstance(tiny, BertForMaskedLM)
    assert tiny.config.num_hidden_layers == 2 and tiny.config.hidden_size == 128
    assert tiny.config.vocab_size == len(tok) and tiny.config.max_position_embeddings == 64
    assert tiny.get_input_embeddings().weight.shape == (len(tok), 128)
    assert len(tiny.bert.encoder.layer) == 2
    assert tiny.get_output_embeddings().weight is tiny.get_input_embeddings().weight  # tied decoder


def batch(tok, seed=0, rate=0.3):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, len(tok), (3, SEQ), generator=g)
    ids[:, 0] = tok.cls_token_id
    ids[:, -1] = tok.sep_token_id
    attention = torch.ones_like(ids)
    attention[2, SEQ - 5:] = 0
    ids[2, SEQ - 5:] = tok.pad_token_id
    selected = (torch.rand(ids.shape, generator=g) < rate) & (attention == 1)
    selected[:, 0] = False
    selected[0, 3] = True
    labels = torch.where(selected, ids, torch.full_like(ids, -100))
    inputs = torch.where(selected, torch.full_like(ids, tok.mask_token_id), ids)
    return inputs, attention, labels


def test_sparse_mlm_loss_equals_the_full_head(tok, tiny):
    inputs, attention, labels = batch(tok)
    with torch.no_grad():
        loss, logits, targets = SparseMLM(tiny)(inputs, attention, labels)
        full = tiny(input_ids=inputs, attention_mask=attention).logits
    selected = labels != -100
    assert logits.shape == (int(selected.sum()), len(tok))
    assert torch.equal(targets, labels[selected])
    # The same encoder call; the head (dense 128, LayerNorm 128, decoder 128) on fewer rows, then the loss's
    # log-sum-exp over the vocabulary and mean over the selected tokens.
    tol = fp_tolerance(torch.float32, 3 * 128 + len(tok) + int(selected.sum()))
    atol = tol * full[selected].abs().max().item()
    torch.testing.assert_close(logits, full[selected], rtol=tol, atol=atol)
    torch.testing.assert_close(loss, F.cross_entropy(full[selected], labels[selected]), rtol=tol, atol=atol)
    # and the same as transformers' own loss (which ignores -100)
    with torch.no_grad():
        hf_loss = tiny(input_ids=inputs, attention_mask=attention, labels=labels).loss
    torch.testing.assert_close(loss, hf_loss, rtol=tol, atol=atol)


def test_sparse_mlm_gradients_match_the_full_head(tok):
    torch.manual_seed(1)
    model = build_mlm("tiny", tok, max_position=64).eval()
    inputs, attention, labels = batch(tok, seed=2)
    SparseMLM(model)(inputs, attention, labels)[0].backward()
    sparse = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    model(input_ids=inputs, attention_mask=attention, labels=labels).loss.backward()
    full = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert sparse.keys() == full.keys()
    # Backward through the loss (vocabulary), the head (3 x 128) and 2 layers (24 keys, 128 hidden, 512 FFN), and
    # the weight gradients' sums over the 3 x 24 tokens.
    tol = fp_tolerance(torch.float32, len(tok) + 3 * 128 + 2 * (SEQ + 128 + 512) + 3 * SEQ)
    for name, grad in full.items():
        # Scaled by the largest gradient of the same module: a bias's gradient sums the same per-token terms as its
        # weight's (there times unit-scale inputs), and can be ~0 by itself (a key bias: softmax ignores it).
        module = name.rsplit(".", 1)[0]
        scale = max(g.abs().max().item() for n, g in full.items() if n.rsplit(".", 1)[0] == module)
        torch.testing.assert_close(sparse[name], grad, rtol=tol, atol=tol * scale, msg=name)


def test_sparse_mlm_without_masked_tokens(tok):
    torch.manual_seed(2)
    model = build_mlm("tiny", tok, max_position=64)
    inputs, attention, labels = batch(tok)
    labels = torch.full_like(labels, -100)
    loss, logits, targets = SparseMLM(model)(inputs, attention, labels)
    assert loss.item() == 0.0 and loss.dim() == 0
    assert logits.shape == (0, len(tok)) and targets.numel() == 0
    assert loss.requires_grad
    loss.backward()  # no error, and every parameter gets a (zero) gradient, so DDP sees them all used
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads)
    assert all(torch.count_nonzero(g) == 0 for g in grads)


def test_sparse_mlm_state_dict_is_the_model(tiny):
    wrapped = SparseMLM(tiny)
    assert {k.removeprefix("model.") for k in wrapped.state_dict()} == set(tiny.state_dict())


def test_sparse_mlm_on_a_family_without_a_known_head(tok):
    """DistilBERT's head is not `cls`/`lm_head`: the wrapper falls back to the full head, same loss."""
    from transformers import DistilBertConfig, DistilBertForMaskedLM

    torch.manual_seed(3)
    model = DistilBertForMaskedLM(DistilBertConfig(vocab_size=len(tok), dim=32, hidden_dim=64, n_layers=1, n_heads=2,
                                                   max_position_embeddings=64)).eval()
    inputs, attention, labels = batch(tok)
    with torch.no_grad():
        loss, logits, _ = SparseMLM(model)(inputs, attention, labels)
        full = model(input_ids=inputs, attention_mask=attention).logits
    selected = labels != -100
    # Exact by design: the fallback is the same full forward on the same inputs, then the same loss function.
    assert torch.equal(logits, full[selected])
    assert torch.equal(loss, F.cross_entropy(full[selected], labels[selected]))


def test_sparse_mlm_on_roberta(tok):
    from transformers import RobertaConfig, RobertaForMaskedLM

    torch.manual_seed(4)
    model = RobertaForMaskedLM(RobertaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1,
                                             num_attention_heads=2, intermediate_size=64,
                                             max_position_embeddings=80, pad_token_id=0)).eval()
    inputs, attention, labels = batch(tok)
    with torch.no_grad():
        loss, logits, _ = SparseMLM(model)(inputs, attention, labels)
        full = model(input_ids=inputs, attention_mask=attention).logits
    selected = labels != -100
    # As for BERT: the same encoder call, the head (3 x 32) on fewer rows, the loss over the vocabulary and tokens.
    tol = fp_tolerance(torch.float32, 3 * 32 + len(tok) + int(selected.sum()))
    atol = tol * full[selected].abs().max().item()
    torch.testing.assert_close(logits, full[selected], rtol=tol, atol=atol)
    torch.testing.assert_close(loss, F.cross_entropy(full[selected], labels[selected]), rtol=tol, atol=atol)


@pytest.mark.parametrize("norm", ["post", "pre"])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_document_attention_keeps_packed_texts_apart(tok, norm, attn):
    torch.manual_seed(5)
    model = build_mlm("tiny", tok, max_position=64, dropout=0.0, norm=norm).eval()
    model.config._attn_implementation = attn
    cls, sep = tok.cls_token_id, tok.sep_token_id
    a, b = tok("alpha beta gamma", add_special_tokens=False)["input_ids"], tok("river stone", add_special_tokens=False)["input_ids"]
    ids = torch.tensor([[cls, *a, sep, *b, sep]])
    ends = (ids == sep).long()
    segments = torch.cumsum(ends, dim=1) - ends
    labels = torch.full_like(ids, -100)
    labels[0, 1:] = ids[0, 1:]  # predict every token, so the logits show each position's hidden state
    with torch.no_grad():
        _, packed, _ = SparseMLM(model)(ids, torch.ones_like(ids), labels, segment_ids=segments)
        alone_a = model(input_ids=torch.tensor([[cls, *a, sep]])).logits[0, 1:]
        alone_b = model(input_ids=torch.tensor([[cls, *b, sep]])).logits[0, 1:]
        _, mixed, _ = SparseMLM(model)(ids, torch.ones_like(ids), labels)
    # each text scores exactly as it would alone in fine-tuning ([CLS] text [SEP], positions from the start) …
    # (the same math on another sequence length: 2 layers over its keys, 128 hidden, 512 FFN, then the head 3 x 128)
    tol = fp_tolerance(torch.float32, 2 * (ids.shape[1] + 128 + 512) + 3 * 128)
    torch.testing.assert_close(packed[:len(a) + 1], alone_a, rtol=tol, atol=tol * alone_a.abs().max().item())
    # … except that the second text has no [CLS] of its own to look at, so it must differ from one that has …
    # (not a rounding bound: a behavioural difference, far larger than 1e-4 when the texts are apart or mixed)
    assert not torch.allclose(packed[len(a) + 1:], alone_b, atol=1e-4)
    # … and it must not see the first text: changing the first text leaves it untouched
    other = ids.clone()
    other[0, 1] = tok.convert_tokens_to_ids("omega")
    with torch.no_grad():
        _, changed, _ = SparseMLM(model)(other, torch.ones_like(ids), labels, segment_ids=segments)
    torch.testing.assert_close(changed[len(a) + 1:], packed[len(a) + 1:], rtol=tol,
                               atol=tol * packed[len(a) + 1:].abs().max().item())
    assert not torch.allclose(mixed[len(a) + 1:], packed[len(a) + 1:], atol=1e-4)  # without it, texts mix (behavioural)


def test_document_attention_on_a_family_without_a_known_head(tok):
    """The full-head path (DistilBERT) takes the same mask and positions: the second text ignores the first."""
    from transformers import DistilBertConfig, DistilBertForMaskedLM

    torch.manual_seed(6)
    model = DistilBertForMaskedLM(DistilBertConfig(vocab_size=len(tok), dim=32, hidden_dim=64, n_layers=1, n_heads=2,
                                                   max_position_embeddings=64, dropout=0.0)).eval()
    cls, sep = tok.cls_token_id, tok.sep_token_id
    a, b = tok("alpha beta gamma", add_special_tokens=False)["input_ids"], tok("river stone", add_special_tokens=False)["input_ids"]
    ids = torch.tensor([[cls, *a, sep, *b, sep]])
    ends = (ids == sep).long()
    segments = torch.cumsum(ends, dim=1) - ends
    labels = ids.clone()
    other = ids.clone()
    other[0, 1] = tok.convert_tokens_to_ids("omega")
    with torch.no_grad():
        _, packed, _ = SparseMLM(model)(ids, torch.ones_like(ids), labels, segment_ids=segments)
        _, changed, _ = SparseMLM(model)(other, torch.ones_like(ids), labels, segment_ids=segments)
    second = slice(len(a) + 2, None)
    # the same math with other values at masked positions: 1 layer over its keys, 32 hidden, 64 FFN, head 3 x 32
    tol = fp_tolerance(torch.float32, ids.shape[1] + 32 + 64 + 3 * 32)
    torch.testing.assert_close(changed[second], packed[second], rtol=tol, atol=tol * packed[second].abs().max().item())
    # not a rounding bound: the changed first text must move its own logits well beyond it (behavioural)
    assert not torch.allclose(changed[1:len(a) + 1], packed[1:len(a) + 1], atol=1e-4)


def test_parameter_counts(tok, tiny):
    h, v, p = 128, len(tok), 64
    unique = {id(x): x for x in tiny.parameters()}
    assert inspect.count(tiny) == sum(x.numel() for x in unique.values())
    assert inspect.count(tiny) < sum(x.numel() for x in tiny.state_dict().values())  # the tied decoder counts once
    tables = v * h + p * h + tiny.config.type_vocab_size * h
    assert inspect.embedding_params(tiny) == tables
    assert inspect.non_embedding_params(tiny) == inspect.count(tiny) - tables
    layer = inspect.count(tiny.bert.encoder.layer[0])
    assert layer == 4 * (h * h + h) + 2 * (h * 4 * h) + 4 * h + h + 2 * 2 * h  # q,k,v,o + FFN + biases + 2 LayerNorms


def test_flops_per_token(tok, tiny):
    flops = inspect.flops_per_token(tiny, seq_len=SEQ)
    non_emb = inspect.non_embedding_params(tiny)
    v, h, layers = len(tok), 128, 2
    assert flops["training_6n"] == 6 * non_emb
    assert flops["attention"] == 4 * layers * SEQ * h
    assert flops["forward"] == 2 * (non_emb + v * h) + flops["attention"]  # tied decoder still multiplies by V×h
    assert flops["forward"] > 2 * non_emb
    assert flops["training"] == 3 * flops["forward"]
    assert flops["seq_len"] == SEQ
    assert inspect.flops_per_token(tiny, seq_len=2 * SEQ)["attention"] == 2 * flops["attention"]


def test_flops_per_token_untied_decoder(tok):
    from transformers import BertForMaskedLM

    cfg = preset_config("tiny", tok, max_position=64)
    cfg.tie_word_embeddings = False
    model = BertForMaskedLM(cfg)
    assert model.get_output_embeddings().weight is not model.get_input_embeddings().weight
    flops = inspect.flops_per_token(model, seq_len=SEQ)
    # the untied decoder is a Linear, so it is already in the non-embedding count
    assert flops["forward"] == 2 * inspect.non_embedding_params(model) + flops["attention"]


def test_render_tree(tiny):
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(inspect.render_tree(tiny, "tiny preset", seq_len=128))
    text = console.export_text()
    assert "tiny preset" in text and "BertForMaskedLM" in text
    assert "encoder layer" in text
    assert "× 2" in text
    assert "FLOPs per token" in text and "sequence 128" in text
    assert "decoder → vocabulary logits" in text
    total = inspect.count(tiny)
    assert f"{total / 1e3:.2f}K parameters" in text


def test_blocks_group_identical_layers(tiny):
    top = inspect.blocks(tiny)
    names = [b.name for b in top]
    assert names == ["bert", "cls"]
    encoder = next(b for b in top[0].children if b.name == "encoder")
    (layers,) = encoder.children
    assert layers.kind == "encoder layer" and layers.repeat == 2
    assert layers.params == inspect.count(tiny.bert.encoder.layer[0])
    assert {c.kind for c in layers.children} == {"attention", "feed-forward", "projection"}


def test_pre_layernorm_preset_builds_saves_and_loads(tok, tmp_path):
    from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification

    torch.manual_seed(0)
    model = build_mlm("tiny", tok, max_position=64, dropout=0.0, norm="pre")
    assert type(model).__name__ == "RobertaPreLayerNormForMaskedLM"
    assert model.config.hidden_size == PRESETS["tiny"]["hidden_size"]
    assert model.config.max_position_embeddings == 64 + tok.pad_token_id + 1  # RoBERTa positions start at pad + 1
    ids = torch.randint(5, len(tok), (2, SEQ))
    labels = torch.full_like(ids, -100)
    labels[:, 3] = ids[:, 3]
    loss, logits, targets = SparseMLM(model)(ids, torch.ones_like(ids), labels)
    full_logits = model(input_ids=ids).logits
    full = F.cross_entropy(full_logits[:, 3], ids[:, 3])
    tol = fp_tolerance(torch.float32, 3 * 128 + len(tok) + 2)  # the head on 2 rows, the loss over the vocabulary
    assert torch.allclose(loss, full, atol=tol * full_logits[:, 3].abs().max().item(), rtol=tol)
    assert logits.shape == (2, len(tok))
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForMaskedLM.from_pretrained(tmp_path)
    # The same weights and math; eval vs train mode (dropout 0) may take other kernels: 2 layers, then the head.
    tol = fp_tolerance(torch.float32, 2 * (SEQ + 128 + 512) + 3 * 128)
    assert torch.allclose(reloaded(input_ids=ids).logits, full_logits, atol=tol * full_logits.abs().max().item(),
                          rtol=tol)
    clf = AutoModelForSequenceClassification.from_pretrained(tmp_path, num_labels=2)
    assert clf(input_ids=ids).logits.shape == (2, 2)

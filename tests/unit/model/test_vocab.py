"""Vocabulary extension: unknown pieces become tokens with in-distribution embeddings."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

from tuneforge.data.coverage import measure_coverage
from tuneforge.data.labels import LabelSpace
from tuneforge.model.vocab import extend_vocabulary

TEXTS = ["the movie was 好看", "great food 棒极了", "Привет good", "привет bad 好"]
LABELS = LabelSpace(("neg", "pos"), False)


def _build(folder: Path, embedding_rows: int | None = None) -> Path:
    """Like conftest.build_tiny_model, but with a duplicate-free vocabulary (the shared fixture lists 'a'
    twice, which leaves a hole at id 5 so len(tokenizer) < max id + 1) and optionally a padded embedding
    matrix (more rows than tokens, as many released checkpoints have)."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    from conftest import _vocab

    vocab = list(dict.fromkeys(_vocab()))
    folder.mkdir(parents=True)
    BertTokenizer(vocab={t: i for i, t in enumerate(vocab)}, do_lower_case=True).save_pretrained(folder)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=embedding_rows or len(vocab), hidden_size=32, num_hidden_layers=1,
                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=64, num_labels=2)
    BertForSequenceClassification(cfg).save_pretrained(folder)
    return folder


def _load(folder):
    from tuneforge.model.build import load_classifier, load_tokenizer

    return load_tokenizer(str(folder)), load_classifier(str(folder), LABELS)


@pytest.fixture(scope="module")
def clean_folder(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("vocab") / "clean")


def test_extend_vocabulary_removes_unknowns(clean_folder):
    tok, model = _load(clean_folder)
    before = measure_coverage(tok, TEXTS)
    assert before.unk_rate > 0.2
    old_len, unk_id = len(tok), tok.unk_token_id
    old_emb = model.get_input_embeddings().weight.detach().clone()
    assert old_emb.shape[0] == old_len

    added = extend_vocabulary(tok, model, before.missing, max_new=100)

    assert set(added) == set(before.missing) == {"好", "看", "棒", "极", "了", "привет"}
    assert added[0] in ("好", "привет")  # most frequent first
    assert len(tok) == old_len + len(added)
    emb = model.get_input_embeddings().weight.detach()
    assert emb.shape[0] == len(tok)
    assert model.config.vocab_size == len(tok)
    assert torch.equal(emb[:old_len], old_emb)  # existing rows untouched
    new_ids = tok.convert_tokens_to_ids(added)
    assert sorted(new_ids) == list(range(old_len, len(tok)))  # fresh ids, no collisions

    after = measure_coverage(tok, TEXTS)
    assert after.unk_rate == 0 and not after.missing
    ids = tok("Привет 好看")["input_ids"]
    assert unk_id not in ids
    assert ids[1:-1] == tok.convert_tokens_to_ids(["привет", "好", "看"])

    new_rows = emb[new_ids]
    assert torch.isfinite(new_rows).all()
    assert not any(torch.allclose(r, emb[unk_id]) for r in new_rows)  # behavioural: new rows are not [UNK]'s copy
    # "in distribution": on the scale of the existing rows, not random large values
    assert new_rows.norm(dim=1).max() < 3 * old_emb.norm(dim=1).max()

    with torch.no_grad():
        out = model(**tok(["好看 привет"], return_tensors="pt"))
    assert torch.isfinite(out.logits).all()


def test_extend_vocabulary_on_shared_tiny_model(tiny_model):
    tok, model = _load(tiny_model)
    before = measure_coverage(tok, TEXTS)
    old_len = len(tok)
    added = extend_vocabulary(tok, model, before.missing, max_new=100)
    assert len(added) == 6 and len(tok) == old_len + 6
    assert model.get_input_embeddings().weight.shape[0] == len(tok)
    assert measure_coverage(tok, TEXTS).unk_rate == 0
    assert torch.isfinite(model.get_input_embeddings().weight).all()


def test_extend_vocabulary_respects_max_new(clean_folder):
    tok, model = _load(clean_folder)
    missing = measure_coverage(tok, TEXTS).missing
    old_len = len(tok)
    added = extend_vocabulary(tok, model, missing, max_new=2)
    assert added == [w for w, _ in missing.most_common(2)]
    assert len(tok) == old_len + 2 == model.get_input_embeddings().weight.shape[0]
    assert measure_coverage(tok, TEXTS).unk_rate > 0  # the rest stay unknown


def test_extend_vocabulary_nothing_to_add(clean_folder):
    tok, model = _load(clean_folder)
    old_len = len(tok)
    assert extend_vocabulary(tok, model, Counter(), max_new=10) == []
    assert extend_vocabulary(tok, model, Counter({"good": 3}), max_new=10) == []  # already in vocab
    assert len(tok) == old_len == model.get_input_embeddings().weight.shape[0]


def test_extend_vocabulary_with_padded_embedding_matrix(tmp_path):
    """Checkpoints often have more embedding rows than tokens (padded to a multiple of 8/64). New tokens
    must still get freshly initialised rows, and no existing row may be dropped."""
    tok, model = _load(_build(tmp_path / "padded", embedding_rows=128))
    old_emb = model.get_input_embeddings().weight.detach().clone()
    assert len(tok) < old_emb.shape[0] == 128
    added = extend_vocabulary(tok, model, measure_coverage(tok, TEXTS).missing, max_new=100)
    emb = model.get_input_embeddings().weight.detach()
    assert emb.shape[0] >= 128, "the embedding matrix shrank"
    for tid in tok.convert_tokens_to_ids(added):
        assert tid < emb.shape[0]
        if tid < 128:
            assert not torch.equal(emb[tid], old_emb[tid]), "new token reuses an untrained padding row"

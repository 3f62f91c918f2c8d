"""A classifier loaded from an encoder without pooler weights (multilingual-e5-small) starts its pooler as the
identity; one whose checkpoint has a pooler (minilm-l6) keeps the trained weights."""
from __future__ import annotations

import torch
from transformers import BertConfig, BertModel

from tuneforge.data.labels import LabelSpace
from tuneforge.model.build import load_classifier

CONFIG = dict(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
              max_position_embeddings=64)


def _encoder(folder, pooler: bool):
    torch.manual_seed(0)
    model = BertModel(BertConfig(**CONFIG), add_pooling_layer=pooler)
    model.save_pretrained(folder)
    return model


def test_missing_pooler_starts_as_identity(tmp_path):
    _encoder(tmp_path, pooler=False)
    model = load_classifier(str(tmp_path), LabelSpace.from_labels(["a", "b"], False))
    dense = model.bert.pooler.dense
    assert torch.equal(dense.weight, torch.eye(32)) and torch.count_nonzero(dense.bias) == 0


def test_trained_pooler_is_kept(tmp_path):
    saved = _encoder(tmp_path, pooler=True)
    model = load_classifier(str(tmp_path), LabelSpace.from_labels(["a", "b"], False))
    assert torch.equal(model.bert.pooler.dense.weight, saved.pooler.dense.weight)
    assert not torch.equal(model.bert.pooler.dense.weight, torch.eye(32))

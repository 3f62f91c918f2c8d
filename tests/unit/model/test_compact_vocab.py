"""Vocabulary compaction (model/compact_vocab.py): the model reads the renumbered texts exactly as it read the
originals, and `expand` gives back the full table with the trained rows in place."""
from __future__ import annotations

import torch

from tuneforge.data.encode import Encoded
from tuneforge.data.labels import LabelSpace
from tuneforge.model.build import load_classifier
from tuneforge.model.compact_vocab import compact_vocabulary


def _classifier(tiny_model):
    torch.manual_seed(0)
    return load_classifier(str(tiny_model), LabelSpace(("a", "b"), False)).eval()


def _logits(model, rows, pad):
    width = max(map(len, rows))
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).logits


def test_compact_model_reads_renumbered_texts_as_the_full_one(tiny_model):
    model = _classifier(tiny_model)
    vocab = model.config.vocab_size
    full = model.get_input_embeddings().weight.detach().clone()
    rows = {"train": [[2, 40, 41, 3], [2, 57, 3]], "test": [[2, 99, 40, 100, 3]]}
    encoded = {k: Encoded([list(r) for r in v]) for k, v in rows.items()}
    before = _logits(model, rows["test"], 0)

    compact = compact_vocabulary(model, encoded, [0, 1, 2, 3], min_bytes=0)

    assert compact is not None and compact.ids.tolist() == [0, 1, 2, 3, 40, 41, 57, 99, 100]
    assert model.get_input_embeddings().weight.shape == (9, full.shape[1]) and model.config.vocab_size == 9
    assert encoded["train"].input_ids == [[2, 4, 5, 3], [2, 6, 3]] and encoded["test"].input_ids == [[2, 7, 4, 8, 3]]
    assert torch.equal(_logits(model, encoded["test"].input_ids, compact.compact_id(0)), before)

    with torch.no_grad():  # "training" moves the rows the texts use
        model.get_input_embeddings().weight.add_(1.0)
    compact.expand(model)

    weight = model.get_input_embeddings().weight.detach()
    assert weight.shape == (vocab, full.shape[1]) and model.config.vocab_size == vocab
    kept = compact.ids
    assert torch.equal(weight[kept], full[kept] + 1.0)
    others = torch.ones(vocab, dtype=torch.bool)
    others[kept] = False
    assert torch.equal(weight[others], full[others])  # rows no text uses come back as loaded
    assert model.get_input_embeddings().padding_idx == 0


def test_small_or_dense_tables_are_left_alone(tiny_model):
    model = _classifier(tiny_model)
    encoded = {"train": Encoded([[2, 5, 3]])}
    assert compact_vocabulary(model, encoded, [0]) is None  # under MIN_BYTES (64 MB)
    everything = {"train": Encoded([list(range(model.config.vocab_size))])}
    assert compact_vocabulary(model, everything, [0], min_bytes=0) is None  # would not halve it
    assert encoded["train"].input_ids == [[2, 5, 3]]


def test_ids_the_config_names_keep_their_numbers(tiny_model):
    model = _classifier(tiny_model)
    model.config.pad_token_id, model.config.eos_token_id = 0, 30  # as a decoder classifier finds its last token
    encoded = {"train": Encoded([[2, 40, 41, 3], [2, 57, 3]])}
    compact = compact_vocabulary(model, encoded, [0, 1, 2, 3], min_bytes=0)
    assert compact.ids[:31].tolist() == list(range(31)) and compact.ids[31:].tolist() == [40, 41, 57]
    assert encoded["train"].input_ids == [[2, 31, 32, 3], [2, 33, 3]]
    too_far = _classifier(tiny_model)
    too_far.config.eos_token_id = too_far.config.vocab_size - 1  # at the end: compacting would keep every row
    assert compact_vocabulary(too_far, {"train": Encoded([[2, 5, 3]])}, [0], min_bytes=0) is None

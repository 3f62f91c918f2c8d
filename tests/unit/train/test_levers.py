"""`runtime.levers`: each speed lever is switched by its name, and `none` is the stock computation."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import make_rows
from tuneforge.config import FinetuneConfig, load_config
from tuneforge.config.levers import LEVERS, parse_levers
from tuneforge.data.encode import encode_texts
from tuneforge.data.labels import LabelSpace
from tuneforge.errors import UserError
from tuneforge.model.build import load_classifier, load_tokenizer
from tuneforge.model.dropout import ATTENTION, FastDropout
from tuneforge.model.first_token import first_token_layer, first_token_only
from tuneforge.train.objectives import make_objective
from tuneforge.train.session import Session
from tuneforge.train.sparse_rows import EmbeddingRowsAdamW


def test_parse_levers_forms():
    assert parse_levers("all") == set(LEVERS)
    assert parse_levers("none") == set()
    assert parse_levers("all,-fused_adamw,-first_token") == set(LEVERS) - {"fused_adamw", "first_token"}
    assert parse_levers(" first_token , fused_adamw ") == {"first_token", "fused_adamw"}
    assert parse_levers("none,embedding_rows") == {"embedding_rows"}
    with pytest.raises(ValueError, match="unknown lever 'fast_dropuot'"):
        parse_levers("all,-fast_dropuot")


def test_an_unknown_lever_is_a_one_line_config_error():
    with pytest.raises(UserError) as err:
        load_config(None, FinetuneConfig, ["runtime.levers=all,-warp_drive"], {})
    assert "runtime.levers" in str(err.value) and "warp_drive" in str(err.value) and "\n" not in str(err.value)


def _session(tmp_path, levers: str, tiny_model):
    cfg = FinetuneConfig.model_validate({
        "output": str(tmp_path / f"run-{levers.replace(',', '_')}"),
        "model": {"name": str(tiny_model)},
        "train": {"batch_size": 8, "learning_rate": 1e-3, "epochs": 1, "max_steps": 2, "early_stopping_patience": 0},
        "eval": {"every_steps": 2, "metric": "accuracy"},
        "runtime": {"device": "cpu", "precision": "fp32", "threads": 1, "progress": False, "levers": levers}})
    session = Session(cfg)
    session.resolve(cfg)
    return session


def _train(tmp_path, tiny_model, levers: str):
    """A two-step fine-tune through the session, as the finetune recipe runs it."""
    rows = make_rows(32)
    labels = LabelSpace.from_labels([y for _, y in rows])
    tokenizer = load_tokenizer(str(tiny_model))
    encoded = encode_texts(tokenizer, [t for t, _ in rows], 32, labels.encode([y for _, y in rows]))
    session = _session(tmp_path, levers, tiny_model)
    torch.manual_seed(0)
    model = session.apply_levers(load_classifier(str(tiny_model), labels))
    result = session.train(model, session.text_batches(encoded, 0), make_objective("classification", multi_label=False),
                           lambda m: {"accuracy": 0.5}, metric="accuracy", total_steps=2,
                           embedding_rows=[0, *(i for r in encoded.input_ids for i in r)])
    return session, model, result


@pytest.mark.parametrize("levers", ["all", "none"])
def test_each_lever_switches_what_it_names(tmp_path, tiny_model, levers):
    session, model, result = _train(tmp_path, tiny_model, levers)
    on = levers == "all"
    assert result.state.step == 2
    # embedding_rows: the word embedding trains through the row table's optimizer
    assert isinstance(result.optimizer.optimizer, EmbeddingRowsAdamW) is on  # inside Accelerate's wrapper
    # fast_dropout: every dropout module is FastDropout (on) or PyTorch's own (off)
    dropouts = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert dropouts and all(isinstance(m, FastDropout) is on for m in dropouts)
    # fast_attention: TuneForge's attention function, or transformers' sdpa
    assert (model.config._attn_implementation == ATTENTION) is on
    # first_token: the last layer's feed-forward sees one position inside first_token_only, or all of them
    seen = []
    first_token_layer(model).intermediate.dense.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[1]))
    ids = torch.tensor([[2, 30, 31, 32, 3]])
    with torch.no_grad(), first_token_only(model):
        model.eval()(input_ids=ids, attention_mask=torch.ones_like(ids))
    assert seen == ([1] if on else [5])
    # length_grouping: batches of similar length (less padding) or plain shuffled ones
    assert session.text_batches(_varied(), 0).grouped is on


def test_fused_adamw_lever_alone(tmp_path, tiny_model):
    _, _, fused = _train(tmp_path, tiny_model, "all,-embedding_rows")
    _, _, plain = _train(tmp_path, tiny_model, "all,-embedding_rows,-fused_adamw")
    fused, plain = fused.optimizer.optimizer, plain.optimizer.optimizer  # inside Accelerate's wrapper
    assert type(fused) is type(plain) is torch.optim.AdamW
    assert fused.defaults["fused"] is True and not plain.defaults["fused"]


def _varied():
    from tuneforge.data.encode import Encoded

    rng = np.random.default_rng(0)
    return Encoded([[1] * int(n) for n in rng.integers(2, 60, 256)], None)


def test_length_grouping_pads_less_than_shuffled_batches():
    from tuneforge.data.encode import LengthGroupedBatches

    data = _varied()

    def padding(grouped: bool) -> int:
        batches = LengthGroupedBatches(data, 0, grouped=grouped).batches(16, seed=1, epoch=0)
        assert sorted(np.concatenate(batches).tolist()) == list(range(len(data)))  # every row once
        return sum(int(data.lengths[b].max()) * len(b) - int(data.lengths[b].sum()) for b in batches)

    assert padding(True) < 0.3 * padding(False)

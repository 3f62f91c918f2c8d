"""Embedding prefixes by role (tuneforge.json `embedding.prefixes`, as multilingual-e5-small's folder has them) in
the PyTorch and ONNX predictors, `/v1/embed` and `tuneforge embed`, and `embed` choosing its model when none is given.
The tiny encoder stands in for e5: its prefixes are words of its own vocabulary, so a prefix changes the tokens."""
from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serve_helpers import client_ready

from conftest import fp_tolerance
from tuneforge.model.manifest import Manifest
from tuneforge.serve.predictor import embedding_prefixes, with_role

TEXTS = ["the food was really nice", "service is slow", "hotel room"]
PREFIXES = {"query": "good: ", "passage": "bad: "}


def _prefixed_copy(source, dest):
    """`source` (a model folder) copied to `dest` with an e5-style embedding section in its tuneforge.json."""
    shutil.copytree(source, dest)
    path = dest / "tuneforge.json"
    manifest = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"task": "encoder"}
    manifest["embedding"] = {"pooling": "mean", "normalize": True, "prefixes": PREFIXES}
    path.write_text(json.dumps(manifest), encoding="utf-8")
    return dest


@pytest.fixture(scope="module")
def prefixed(tmp_path_factory, tiny_model):
    return _prefixed_copy(tiny_model, tmp_path_factory.mktemp("prefixed") / "enc")


def _close(got, want, texts):
    """Same math, batched and padded perhaps differently: 2 layers over the length, 32 hidden, 64 FFN, then a mean."""
    tol = fp_tolerance(np.float32, 2 * (12 + 32 + 64) + 12)
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())


def test_prefixes_come_from_the_manifest_and_only_from_there():
    assert embedding_prefixes(Manifest.model_validate({"embedding": {"prefixes": PREFIXES}})) == PREFIXES
    assert embedding_prefixes(Manifest()) == {}
    assert embedding_prefixes(Manifest.model_validate({"embedding": {"pooling": "mean"}})) == {}
    assert with_role(["x"], PREFIXES, "passage") == ["bad: x"]
    assert with_role(["x"], {}, "query") == ["x"]
    with pytest.raises(ValueError, match="role"):
        with_role(["x"], PREFIXES, "document")


def test_embed_puts_the_role_prefix_before_each_text(prefixed, tiny_model):
    from tuneforge.serve.load import load

    ours, plain = load(str(prefixed)), load(str(tiny_model))
    assert ours.prefixes == PREFIXES and plain.prefixes == {}
    query, passage = ours.embed(TEXTS), ours.embed(TEXTS, role="passage")
    _close(query, plain.embed([PREFIXES["query"] + t for t in TEXTS]), TEXTS)  # query is the default role
    _close(passage, plain.embed([PREFIXES["passage"] + t for t in TEXTS]), TEXTS)
    assert not np.allclose(query, plain.embed(TEXTS))  # the prefix changed the vectors
    assert not np.allclose(query, passage)
    # a model without prefixes ignores the role
    np.testing.assert_array_equal(plain.embed(TEXTS, role="passage"), plain.embed(TEXTS, role="query"))
    # the hidden states hold the prefix's tokens too ("good", ":" ahead of the text)
    _, _, mask = ours.embed(TEXTS[:1], return_hidden=True)
    _, _, plain_mask = plain.embed(TEXTS[:1], return_hidden=True)
    assert mask.sum() == plain_mask.sum() + 2


def test_an_onnx_export_keeps_the_prefixes(tiny_encoder_onnx, tmp_path, tiny_model):
    from tuneforge.serve.load import load

    folder = _prefixed_copy(tiny_encoder_onnx[0], tmp_path / "onnx")
    onnx, plain = load(str(folder)), load(str(tiny_model))
    assert onnx.prefixes == PREFIXES
    _close(onnx.embed(TEXTS, role="passage"), plain.embed([PREFIXES["passage"] + t for t in TEXTS]), TEXTS)



def test_v1_embed_takes_a_role(prefixed):
    from tuneforge.serve.app import ServeSettings, create_app
    from tuneforge.serve.load import load

    predictor = load(str(prefixed))
    with TestClient(create_app(predictor, ServeSettings(model_path=str(prefixed)))) as c:
        client_ready(c)
        default = np.array(c.post("/v1/embed", json={"texts": TEXTS}).json()["embeddings"])
        passage = np.array(c.post("/v1/embed", json={"texts": TEXTS, "role": "passage"}).json()["embeddings"])
        bad = c.post("/v1/embed", json={"texts": TEXTS, "role": "document"})
    _close(default, predictor.embed(TEXTS, role="query"), TEXTS)
    _close(passage, predictor.embed(TEXTS, role="passage"), TEXTS)
    assert not np.allclose(default, passage)  # the role reached the model
    assert bad.status_code == 422 and "query" in bad.text


def _main(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    from tuneforge import cli

    monkeypatch.setattr(sys, "argv", ["tuneforge", *map(str, args)])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
        sys.exit(0)
    out = capsys.readouterr()
    return exit_.value.code, out.out, out.err


def test_embed_cli_role_and_a_bad_role(prefixed, tiny_model, tmp_path, monkeypatch, capsys):
    from tuneforge.serve.load import load

    (tmp_path / "t.txt").write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    code, _, err = _main(monkeypatch, capsys, "embed", "--model", prefixed, "--input", tmp_path / "t.txt",
                         "--output", tmp_path / "p.npy", "--role", "passage")
    assert code == 0 and "'bad: '" in err  # says what it put before each text
    _close(np.load(tmp_path / "p.npy"), load(str(tiny_model)).embed([PREFIXES["passage"] + t for t in TEXTS]), TEXTS)
    code, _, err = _main(monkeypatch, capsys, "embed", "--model", prefixed, "--input", tmp_path / "t.txt",
                         "--output", tmp_path / "x.npy", "--role", "document")
    assert code == 2 and "--role document" in err and not (tmp_path / "x.npy").exists()


@pytest.mark.parametrize("model", [None, "auto"])
def test_embed_without_a_model_uses_the_chosen_encoder(model, prefixed, tmp_path, monkeypatch):
    """The recipe asks `choose_encoder` for the model (its rule is tested in tests/unit/model/test_choose.py), says
    which and why, and embeds with that model, prefixes included."""
    import tuneforge.recipes.predict as recipe
    from tuneforge.model.choose import ModelChoice
    from tuneforge.serve.load import load

    seen = []

    def choose(texts, **kwargs):
        seen.append(list(texts))
        return ModelChoice(str(prefixed), "a made-up reason", {"latin": 1.0}, 0.0)

    monkeypatch.setattr(recipe, "choose_encoder", choose)
    (tmp_path / "t.txt").write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    said = []
    shape = recipe.embed_file(model, str(tmp_path / "t.txt"), str(tmp_path / "v.npy"), say=said.append)
    assert seen == [TEXTS] and tuple(shape) == (3, 32)
    assert said[0] == f"model: {prefixed} (auto: a made-up reason; pass --model to pick another)"
    _close(np.load(tmp_path / "v.npy"), load(str(prefixed)).embed(TEXTS), TEXTS)


def test_embed_with_a_model_does_not_choose(tiny_model, tmp_path, monkeypatch):
    import tuneforge.recipes.predict as recipe

    def refuse(*args, **kwargs):
        raise AssertionError("an explicit --model must win")

    monkeypatch.setattr(recipe, "choose_encoder", refuse)
    (tmp_path / "t.txt").write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    said = []
    recipe.embed_file(str(tiny_model), str(tmp_path / "t.txt"), str(tmp_path / "v.npy"), say=said.append)
    assert said == []  # no choice and no prefix to report

"""The ONNX Runtime decoder step (`seq2seq_onnx`) against the full PyTorch forward: the same next-token logits (to
1e-4) for padded sources, branching and moving beams and sentences that leave the batch, on MBart (pre-norm) and
BART/Marian (post-norm); the export is cached by the weights; a Translator with it translates as the PyTorch one."""
from __future__ import annotations

import pytest
import torch
from test_seq2seq_forward import build, drive, one_thread, sources  # noqa: F401 - one_thread is a fixture

pytest.importorskip("onnxruntime")

from tuneforge.generate.seq2seq_onnx import OnnxDecoder, cache_root, fingerprint  # noqa: E402


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEFORGE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.parametrize("kind", ["mbart", "bart", "marian"])
def test_onnx_step_equals_the_full_forward(kind):
    model = build(kind).requires_grad_(False)
    forward = OnnxDecoder.for_model(model, threads=1)
    assert drive(forward, model, *sources()) < 1e-4


def test_the_export_is_cached_by_the_weights(cache):
    model = build("mbart").requires_grad_(False)
    OnnxDecoder.for_model(model, threads=1)
    files = list(cache_root().glob("*.onnx"))
    assert len(files) == 1 and files[0].stem == fingerprint(model)
    stamp = files[0].stat().st_mtime_ns
    OnnxDecoder.for_model(model, threads=1)  # reused, not exported again
    assert files[0].stat().st_mtime_ns == stamp
    with torch.no_grad():
        model.lm_head.weight.add_(0.01)
    assert fingerprint(model) != files[0].stem
    assert not list(cache_root().glob(".decoder-*"))  # no temp file left


def test_translate_ids_with_the_onnx_step_gives_the_pytorch_tokens():
    from tuneforge.generate.beam import BeamSettings, translate_ids

    model = build("mbart").requires_grad_(False)
    g = torch.Generator().manual_seed(7)
    srcs = [torch.randint(4, 300, (n,), generator=g).tolist() + [1] for n in (3, 8, 5, 11)]
    for beams in (1, 3):
        settings = BeamSettings(beams=beams, max_new_tokens=9)
        want = translate_ids(model, srcs, settings, 0, batch_size=2)
        got = translate_ids(model, srcs, settings, 0, batch_size=2, forward=OnnxDecoder.for_model(model, 1))
        assert got == want


def test_the_translator_uses_the_onnx_step_for_small_calls_only(monkeypatch):
    import tuneforge.generate.translate as translate_mod
    from tuneforge.recipes.translate import engine

    seen = []
    monkeypatch.setattr(translate_mod, "translate_ids",
                        lambda model, ids, settings, pad, **kw: seen.append(kw["forward"]) or [[] for _ in ids])

    class Tok:
        pad_token_id = 0

        def __call__(self, texts, **kw):
            return {"input_ids": [[5, 1] for _ in texts]}

        def decode(self, ids, **kw):
            return ""

    marker = object()
    translator = translate_mod.Translator(build("mbart"), Tok(), onnx=marker, precision="bf16")
    limit = translate_mod.ONNX_MAX_SENTENCES
    translator.translate(["a"] * limit)
    translator.translate(["a"] * (limit + 1))
    assert seen == [marker, None]
    assert engine(translator, limit) == "onnxruntime" and engine(translator, limit + 1) == "pytorch-bf16"

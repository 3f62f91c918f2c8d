"""Translation decoding against transformers' own `generate` on tiny random MBart models: greedy and beam search
(several beam sizes, length penalties, no-repeat n-grams, both decoder steps) give the same tokens for a batch of
sources of different lengths; batching and order do not change a result; settings are checked with the option's
name; `Translator` turns texts into detokenised translations (empty text → "")."""
from __future__ import annotations

import pytest
import torch

from tuneforge.errors import UserError
from tuneforge.generate.beam import BeamSettings, decode_length, translate_ids

VOCAB, PAD, EOS = 300, 0, 1
LENGTHS = (3, 9, 5, 14, 1, 7, 20, 2)  # source tokens before the closing EOS: one batch, very different lengths


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_mbart(seed: int, eos_bias: float = 0.0, init_std: float = 0.5, **generation):
    """A tiny random MBart (pad 0, EOS 1 = decoder start). Random models rarely say EOS and loop on one token;
    a large init_std gives peaked distributions, and `eos_bias` on EOS's logit makes it end some outputs early and
    run others into the length cap (the mix the finished-hypothesis rules need)."""
    from transformers import MBartConfig, MBartForConditionalGeneration

    config = MBartConfig(vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                         decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64,
                         max_position_embeddings=64, pad_token_id=PAD, eos_token_id=EOS, bos_token_id=3,
                         decoder_start_token_id=EOS, forced_eos_token_id=None, scale_embedding=True, dropout=0.0,
                         attention_dropout=0.0, init_std=init_std)
    torch.manual_seed(seed)
    model = MBartForConditionalGeneration(config).eval()
    with torch.no_grad():
        model.final_logits_bias[0, EOS] = eos_bias
    for name, value in generation.items():
        setattr(model.generation_config, name, value)
    return model


@pytest.fixture(scope="module")
def nudged():
    return tiny_mbart(seed=2, eos_bias=3.0)


@pytest.fixture(scope="module")
def looping():
    """Never EOS (nor padding): every output runs to the cap."""
    model = tiny_mbart(seed=0, eos_bias=-1e4)
    with torch.no_grad():
        model.final_logits_bias[0, PAD] = -1e4
    return model


def make_sources(lengths=LENGTHS, seed: int = 1) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(4, VOCAB, (n,), generator=g).tolist() + [EOS] for n in lengths]


def reference(model, sources, beams: int, new: int, length_penalty: float = 1.0, no_repeat: int = 0):
    """`model.generate` on the batch (right-padded, masked) → ids without start, EOS and padding."""
    width = max(map(len, sources))
    ids = torch.tensor([s + [PAD] * (width - len(s)) for s in sources])
    kwargs = {"early_stopping": True, "length_penalty": length_penalty} if beams > 1 else {}
    with torch.no_grad():
        out = model.generate(ids, attention_mask=(ids != PAD).long(), num_beams=beams, do_sample=False,
                             max_new_tokens=new, no_repeat_ngram_size=no_repeat, **kwargs)
    result = []
    for row in out[:, 1:].tolist():
        row = row[:row.index(EOS)] if EOS in row else row
        result.append([t for t in row if t != PAD])
    return result


def ours(model, sources, beams: int, new: int, length_penalty: float = 1.0, no_repeat: int = 0, **kw):
    settings = BeamSettings(beams=beams, length_penalty=length_penalty, max_new_tokens=new,
                            no_repeat_ngram=no_repeat)
    return translate_ids(model, sources, settings, PAD, **kw)


@pytest.mark.parametrize("beams, length_penalty, no_repeat", [
    (1, 1.0, 0), (1, 1.0, 2), (2, 1.0, 0), (4, 1.0, 0), (4, 0.5, 0), (4, 2.0, 0), (4, 1.0, 2), (5, 1.2, 3)])
@pytest.mark.parametrize("fast", [True, False], ids=["lean", "transformers-forward"])
def test_same_tokens_as_generate(nudged, beams, length_penalty, no_repeat, fast):
    sources = make_sources()
    want = reference(nudged, sources, beams, 30, length_penalty, no_repeat)
    got = ours(nudged, sources, beams, 30, length_penalty, no_repeat, fast=fast)
    assert got == want
    lengths = {len(x) for x in want}
    assert len(lengths) > 2 and 30 in lengths  # some stop at EOS, some at the cap: both finishing rules ran


@pytest.mark.parametrize("beams", [1, 4])
def test_same_tokens_as_generate_when_nothing_ends(looping, beams):
    """No EOS anywhere: every hypothesis is finished by the length cap, as in transformers."""
    sources = make_sources(seed=7)
    want = reference(looping, sources, beams, 12)
    assert ours(looping, sources, beams, 12) == want
    assert {len(x) for x in want} == {12}


def test_other_seeds_and_batch_sizes(nudged):
    """A result does not depend on the batch it is decoded in: batch 3 (sorted by length, then put back in input
    order) equals batch 32 and generate on another model and other sources."""
    model = tiny_mbart(seed=5, eos_bias=2.5)
    sources = make_sources((4, 11, 6, 2, 16, 8, 3), seed=11)
    want = reference(model, sources, 4, 25)
    assert ours(model, sources, 4, 25, batch_size=3) == want
    assert ours(model, sources, 4, 25, batch_size=32) == want
    assert ours(nudged, sources, 1, 25, batch_size=2) == reference(nudged, sources, 1, 25)


def test_forced_tokens_from_the_generation_config():
    """A generation config's forced first/last token (MBart-50's target language, BART's EOS) is applied as
    generate applies it."""
    model = tiny_mbart(seed=2, eos_bias=3.0, forced_bos_token_id=7, forced_eos_token_id=EOS)
    sources = make_sources((3, 9, 5))
    for beams in (1, 3):
        want = reference(model, sources, beams, 10)
        assert all(row[0] == 7 for row in want)
        assert ours(model, sources, beams, 10) == want


def test_default_length_and_empty_sources(looping):
    """max_new_tokens None: 1.5 × each sentence's own source + 10 (so batching never changes an output), never past
    the decoder's positions; an empty source gives an empty output without decoding."""
    sources = make_sources((3, 5))
    out = translate_ids(looping, [[], *sources, []], BeamSettings(beams=2), PAD)
    assert out[0] == [] and out[-1] == []
    assert [len(x) for x in out[1:3]] == [decode_length(BeamSettings(), len(s), 64) for s in sources] == [16, 19]
    alone = [translate_ids(looping, [s], BeamSettings(beams=2), PAD)[0] for s in sources]
    assert alone == out[1:3]
    assert decode_length(BeamSettings(), 60, 64) == 64
    assert decode_length(BeamSettings(max_new_tokens=5), 60, 64) == 5


def test_model_mode_is_restored_and_long_sources_refused(nudged):
    nudged.train()
    try:
        translate_ids(nudged, make_sources((3,)), BeamSettings(beams=2, max_new_tokens=3), PAD)
        assert nudged.training
    finally:
        nudged.eval()
    with pytest.raises(UserError, match="source 2 is 70 tokens; the model reads at most 64"):
        translate_ids(nudged, [[5, EOS], [5] * 69 + [EOS]], BeamSettings(beams=1), PAD)


@pytest.mark.parametrize("changes, named", [
    ({"beams": 0}, "--beams"), ({"beams": 65}, "--beams"), ({"beams": True}, "--beams"), ({"beams": 2.0}, "--beams"),
    ({"length_penalty": float("nan")}, "--length-penalty"), ({"length_penalty": "1"}, "--length-penalty"),
    ({"max_new_tokens": 0}, "--max-length"), ({"no_repeat_ngram": -1}, "--no-repeat-ngram")])
def test_settings_are_checked_with_the_option_name(changes, named):
    with pytest.raises(UserError, match=named):
        BeamSettings(**changes)


def test_translator_texts_in_texts_out(tmp_path):
    """Translator.load on a model folder: detokenised translations in input order, equal to decoding generate's
    ids; empty and whitespace-only texts give "" without decoding; sources are cut at max_source_length."""
    from translate_helpers import build_tiny_mbart

    from tuneforge.generate.translate import Translator

    folder = build_tiny_mbart(tmp_path / "model")
    translator = Translator.load(str(folder))
    assert translator.max_source_length == 64  # the manifest's max_length
    texts = ["a man is riding a bike on the street .", "", "zwei kinder spielen im park", "   ", "dog !"]
    done = []
    out = translator.translate(texts, beams=3, max_new_tokens=8, progress=done.append)
    assert out[1] == "" and out[3] == "" and sum(done) == len(texts)
    tokenizer, model = translator.tokenizer, translator.model
    ids = translator.source_ids([texts[0], texts[2], texts[4]])
    assert all(row[-1] == tokenizer.eos_token_id for row in ids)
    want = [tokenizer.decode(r, skip_special_tokens=True, clean_up_tokenization_spaces=False)
            for r in reference(model, ids, 3, 8)]
    assert [out[0], out[2], out[4]] == want
    translator.max_source_length = 3
    assert [len(r) for r in translator.source_ids(texts[:1])] == [3]
    with pytest.raises(UserError, match="--beams"):
        translator.translate(["a"], beams=0)

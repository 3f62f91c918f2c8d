"""Batch prediction (JSON lines) and embeddings (.npy) for a file of texts; `embed` without a model picks the
encoder for the texts (`model.choose`)."""
from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tuneforge.data.sources import read_texts
from tuneforge.errors import UserError
from tuneforge.model.choose import choose_encoder, is_auto, release_tokenizers
from tuneforge.serve.load import load


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def predict_file(model_path: str, input_path: str, output: str, text_column: str = "text", batch_size: int = 64,
                 precision: str = "fp32") -> int:
    texts = read_texts(input_path, text_column, normalize=False)
    predictor = load(model_path, batch_size=batch_size, precision=precision)
    if predictor.labels is None:
        raise UserError(f"{model_path}: has no classification head; use `tuneforge embed` for encoders.")
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for start in range(0, len(texts), 4096):  # bounded memory for large inputs
            chunk = texts[start:start + 4096]
            for text, result in zip(chunk, predictor.predict(chunk)):
                fh.write(json.dumps({"text": text, **result}, ensure_ascii=False) + "\n")
    os.replace(tmp, out)
    return len(texts)


def embed_file(model_path: str | None, input_path: str, output: str, pooling: str = "mean",
               text_column: str = "text", hidden_states: str | None = None, batch_size: int = 64,
               precision: str = "fp32", role: str = "query", say: Callable[[str], None] = _stderr) -> tuple[int, int]:
    """Pooled vectors of every text as .npy (and the hidden states as .npz). `model_path` None or "auto": the
    encoder `choose_encoder` picks for these texts, as fine-tuning does; the choice and its reason go to `say`."""
    texts = read_texts(input_path, text_column, normalize=False)
    if is_auto(model_path):
        choice = choose_encoder(texts, source=f"the texts of {input_path}")
        release_tokenizers()
        say(f"model: {choice.name} (auto: {choice.reason}; pass --model to pick another)")
        model_path = choice.name
    predictor = load(model_path, batch_size=batch_size, precision=precision)
    if predictor.prefixes.get(role):
        say(f"role {role}: each text is embedded as {predictor.prefixes[role]!r} + text, as the model was trained")
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    if hidden_states:
        vectors, hidden, mask = predictor.embed(texts, pooling, return_hidden=True, role=role)
        tmp = Path(hidden_states).with_name(f".{Path(hidden_states).name}.tmp.npz")
        np.savez(tmp, last_hidden_state=hidden, attention_mask=mask)
        os.replace(tmp, hidden_states)
    else:
        vectors = predictor.embed(texts, pooling, role=role)
    tmp = out.with_name(f".{out.name}.tmp.npy")
    np.save(tmp, vectors)
    os.replace(tmp, out)
    return vectors.shape

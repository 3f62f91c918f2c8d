"""Batch prediction (JSON lines) and embeddings (.npy) for a file of texts."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from tuneforge.data.sources import read_texts
from tuneforge.errors import UserError
from tuneforge.serve.load import load


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


def embed_file(model_path: str, input_path: str, output: str, pooling: str = "mean", text_column: str = "text",
               hidden_states: str | None = None, batch_size: int = 64, precision: str = "fp32") -> tuple[int, int]:
    texts = read_texts(input_path, text_column, normalize=False)
    predictor = load(model_path, batch_size=batch_size, precision=precision)
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    if hidden_states:
        vectors, hidden, mask = predictor.embed(texts, pooling, return_hidden=True)
        tmp = Path(hidden_states).with_name(f".{Path(hidden_states).name}.tmp.npz")
        np.savez(tmp, last_hidden_state=hidden, attention_mask=mask)
        os.replace(tmp, hidden_states)
    else:
        vectors = predictor.embed(texts, pooling)
    tmp = out.with_name(f".{out.name}.tmp.npy")
    np.save(tmp, vectors)
    os.replace(tmp, out)
    return vectors.shape

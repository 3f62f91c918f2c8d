"""ONNX Runtime backend of the predictor: the same predict / predict_proba / embed over an exported folder (the
session itself is opened by `export.runtime`, as the export's parity check opens it)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tuneforge.data.encode import Encoded, collate, sorted_batches
from tuneforge.data.labels import LabelSpace
from tuneforge.errors import UserError
from tuneforge.export.runtime import ONNX_FILE, onnx_forward, open_session
from tuneforge.model.pooling import POOLINGS
from tuneforge.serve.predictor import Predictor, embedding_prefixes, stored_temperature, with_role


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


class OnnxPredictor(Predictor):
    """What `tuneforge.load` returns for a folder with model.onnx. Exported classifiers give labels; exported
    encoders give embeddings (mean or cls pooling: the graph outputs only the last hidden state)."""

    def __init__(self, session, tokenizer, config, max_length: int = 128, batch_size: int = 64,
                 normalize: bool = True, folder: str = "model", temperature: float | None = None,
                 prefixes: dict[str, str] | None = None):
        self.session, self.tokenizer, self.folder = session, tokenizer, folder
        self.max_length, self.batch_size, self.normalize = max_length, batch_size, normalize
        self.prefixes = dict(prefixes or {})
        self.model = None  # no PyTorch module behind this predictor
        self.output = session.get_outputs()[0].name
        self._forward = onnx_forward(session)
        self.labels = LabelSpace.from_model_config(config) if self.output == "logits" else None
        self.temperature = temperature if temperature is not None else stored_temperature(config)
        # int8 graphs exported before per-row activation scales quantize each call's activations with one scale: a
        # text's answer then depends on its batch, so they run one text per forward pass (`load` checks the graph).
        self.one_text_per_forward = False

    @classmethod
    def load(cls, path: str, threads: int | None = None, spinning: str | None = None, **kwargs) -> OnnxPredictor:
        from transformers import AutoConfig

        from tuneforge.export.quantize import per_tensor_activations
        from tuneforge.model.build import load_tokenizer
        from tuneforge.model.manifest import read_manifest

        folder = Path(path)
        manifest = read_manifest(folder)
        kwargs.setdefault("max_length", manifest.max_length)
        kwargs.setdefault("prefixes", embedding_prefixes(manifest))  # export keeps the source's tuneforge.json keys
        session = open_session(folder / ONNX_FILE, threads, spinning)
        config = AutoConfig.from_pretrained(folder)
        predictor = cls(session, load_tokenizer(str(folder)), config, folder=str(path),
                        temperature=stored_temperature(config, manifest), **kwargs)
        predictor.one_text_per_forward = per_tensor_activations(folder / ONNX_FILE, manifest.export)
        return predictor

    def _outputs(self, data: Encoded):
        pad = self.tokenizer.pad_token_id or 0
        for index in sorted_batches(data.lengths, 1 if self.one_text_per_forward else self.batch_size):
            batch = collate(data, index, pad)
            mask = batch["attention_mask"].numpy()
            yield index, mask, self._forward(batch["input_ids"].numpy(), mask)

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        if self.labels is None:
            raise ValueError("this model has no classification head; use embed() instead")
        out = np.zeros((len(texts), len(self.labels.names)), dtype=np.float32)
        for index, _, logits in self._outputs(self._encode(texts)):
            logits = logits.astype(np.float32)
            out[index] = 1 / (1 + np.exp(-logits)) if self.labels.multi_label else _softmax(logits / self.temperature)
        return out

    def embed(self, texts: list[str], pooling: str = "mean", return_hidden: bool = False, role: str = "query"):
        """As Predictor.embed, for `mean` and `cls` pooling."""
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}")
        if self.output != "last_hidden_state":
            raise UserError(f"{self.folder}: this ONNX export is a classifier (it outputs logits only); for "
                            "embeddings export the encoder (`tuneforge export --model minilm-l6`) or use the PyTorch folder.")
        if pooling == "last4":
            raise UserError(f"{self.folder}: --pooling last4 needs every layer; the ONNX graph outputs only the last "
                            "hidden state. Use mean or cls, or the PyTorch model folder.")
        data = self._encode(with_role(texts, self.prefixes, role))
        width = int(data.lengths.max()) if len(data) else 0
        vectors, hidden, mask_out = None, None, np.zeros((len(texts), width), dtype=np.int8)
        for index, mask, last in self._outputs(data):
            m = mask[..., None].astype(np.float32)
            vec = last[:, 0] if pooling == "cls" else (last * m).sum(1) / np.maximum(m.sum(1), 1)
            vectors = vectors if vectors is not None else np.zeros((len(texts), vec.shape[1]), dtype=np.float32)
            vectors[index] = vec
            if return_hidden:
                hidden = hidden if hidden is not None else np.zeros((len(texts), width, last.shape[-1]), dtype=np.float32)
                hidden[index, : last.shape[1]] = last
                mask_out[index, : last.shape[1]] = mask
        return (vectors, hidden, mask_out) if return_hidden else vectors

"""Predictor: labels and probabilities, and pooled embeddings, from a saved model folder (PyTorch; ONNX in
onnx_backend; `serve.load` picks between them)."""
from __future__ import annotations

import numpy as np
import torch

from tuneforge.data.encode import Encoded, collate, encode_texts, sorted_batches
from tuneforge.data.labels import LabelSpace
from tuneforge.data.sources import clean_text
from tuneforge.model.first_token import first_token_only, use_first_token
from tuneforge.model.manifest import Manifest
from tuneforge.model.pooling import POOLINGS, pool

ROLES = ("query", "passage")  # what an embedded text is for; e5-style models want a different prefix for each


def stored_temperature(config, manifest: Manifest | None = None) -> float:
    """The softmax temperature fitted at fine-tune time (config.json `tuneforge_temperature`, else the manifest's
    `temperature`); 1.0 when there is none. Argmax is the same at any T; the probabilities are calibrated."""
    t = getattr(config, "tuneforge_temperature", None)
    if t is None and manifest is not None:
        t = manifest.temperature
    return float(t) if t and float(t) > 0 else 1.0


def embedding_prefixes(manifest: Manifest) -> dict[str, str]:
    """The text an embedding model wants before each input, by role: tuneforge.json's `embedding.prefixes`
    (multilingual-e5-small: "query: " and "passage: ", as it was trained); {} when the folder declares none, so
    every other model embeds the text as given."""
    section = getattr(manifest, "embedding", None)  # an extra key: only embedding folders carry it
    prefixes = section.get("prefixes") if isinstance(section, dict) else None
    return {role: str(prefixes[role]) for role in ROLES if isinstance(prefixes, dict) and prefixes.get(role)}


def with_role(texts: list[str], prefixes: dict[str, str], role: str) -> list[str]:
    """`texts` with the prefix of `role` in front (unchanged when the model has none)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {role!r}")
    prefix = prefixes.get(role, "")
    return [prefix + t for t in texts] if prefix else list(texts)


def int8_linears(model):
    """Every nn.Linear as an int8 linear: weights with one scale per output channel, activations quantized at run
    time with one scale per token row, and attention per text (`tuneforge.model.int8`; PyTorch eager, CPU).

    A text's probabilities are the same alone and in any batch (per-tensor activation scales made them depend on
    the batch's range). At batch 1 a small encoder is bound by reading its weights, so 4× fewer weight bytes is
    what makes it fast; per-channel scales keep the accuracy that per-tensor int8 loses."""
    from tuneforge.model.int8 import int8_linears as row_int8_linears

    return row_int8_linears(model)


def one_text_per_forward(model) -> bool:
    """True when batching would change a text's answer: bfloat16 weights. A bf16 matmul's result for a row depends
    on the shape of the whole call (kernel and blocking); rounding each layer to bf16 turns that into ~2e-3 of
    probability on MiniLM-L6. Such a model runs each text as its own unpadded forward pass."""
    return any(p.dtype == torch.bfloat16 for p in model.parameters())


class Predictor:
    """`tuneforge.load(path)` returns this for a PyTorch folder (`serve.load.load` builds it). Batches are sorted by
    length; outputs keep input order."""

    def __init__(self, model, tokenizer, max_length: int = 128, batch_size: int = 64, normalize: bool = True,
                 prefixes: dict[str, str] | None = None):
        self.model, self.tokenizer = model.eval(), tokenizer
        self.max_length, self.batch_size, self.normalize = max_length, batch_size, normalize
        self.prefixes = dict(prefixes or {})  # role → text put before each input by embed() (`embedding_prefixes`)
        config = model.config
        is_classifier = type(model).__name__.endswith("ForSequenceClassification")
        self.labels = LabelSpace.from_model_config(config) if is_classifier else None
        use_first_token(model)  # exact: the head reads the first token only
        self.temperature = stored_temperature(config)  # single-label only: sigmoid outputs are not rescaled
        self.one_text_per_forward = one_text_per_forward(model)  # batch-invariant answers (see the function)

    def _encode(self, texts: list[str]) -> Encoded:
        texts = [clean_text(t) if self.normalize else t for t in texts]
        return encode_texts(self.tokenizer, texts, self.max_length)

    def _batches(self, data: Encoded):
        pad = self.tokenizer.pad_token_id or 0
        device = next(self.model.parameters()).device
        for index in sorted_batches(data.lengths, 1 if self.one_text_per_forward else self.batch_size):
            yield index, {k: v.to(device) for k, v in collate(data, index, pad).items()}

    @torch.inference_mode()
    def predict_proba(self, texts: list[str]) -> np.ndarray:
        if self.labels is None:
            raise ValueError("this model has no classification head; use embed() instead")
        data = self._encode(texts)
        out = np.zeros((len(texts), len(self.labels.names)), dtype=np.float32)
        for index, batch in self._batches(data):
            with first_token_only(self.model):
                logits = self.model(**batch).logits.float()
            probs = torch.sigmoid(logits) if self.labels.multi_label else torch.softmax(logits / self.temperature, -1)
            out[index] = probs.cpu().numpy()
        return out

    def predict(self, texts: list[str]) -> list[dict]:
        """One dict per text: `label` (a list for multi-label) and `probabilities` per class."""
        probs = self.predict_proba(texts)
        names = self.labels.names
        results = []
        for row in probs:
            label = [n for n, p in zip(names, row) if p >= 0.5] if self.labels.multi_label else names[int(row.argmax())]
            results.append({"label": label, "probabilities": {n: round(float(p), 6) for n, p in zip(names, row)}})
        return results

    @torch.inference_mode()
    def embed(self, texts: list[str], pooling: str = "mean", return_hidden: bool = False, role: str = "query"):
        """Pooled sentence vectors (N, H) — or (N, 4H) for last4. With return_hidden, also the padded last
        hidden state (N, T, H) and its attention mask. `role` (query | passage) picks the prefix a model with
        `prefixes` wants before each text (e5: "query: " for questions and symmetric tasks, "passage: " for the
        documents searched); models without prefixes ignore it."""
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}")
        encoder = getattr(self.model, self.model.base_model_prefix, self.model)
        data = self._encode(with_role(texts, self.prefixes, role))
        vectors, hidden, width = None, None, int(data.lengths.max()) if len(data) else 0
        mask_out = np.zeros((len(texts), width), dtype=np.int8)
        for index, batch in self._batches(data):
            out = encoder(**batch, output_hidden_states=True)
            vec = pool(out.hidden_states, batch["attention_mask"], pooling).float().cpu().numpy()
            vectors = vectors if vectors is not None else np.zeros((len(texts), vec.shape[1]), dtype=np.float32)
            vectors[index] = vec
            if return_hidden:
                last = out.hidden_states[-1].float().cpu().numpy()
                hidden = hidden if hidden is not None else np.zeros((len(texts), width, last.shape[-1]), dtype=np.float32)
                hidden[index, : last.shape[1]] = last
                mask_out[index, : last.shape[1]] = batch["attention_mask"].cpu().numpy()
        return (vectors, hidden, mask_out) if return_hidden else vectors

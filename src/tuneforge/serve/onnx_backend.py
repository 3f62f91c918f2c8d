"""ONNX Runtime backend of the predictor: the same predict / predict_proba / embed over an exported folder."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tuneforge.data.encode import Encoded, collate, sorted_batches
from tuneforge.data.labels import LabelSpace
from tuneforge.errors import UserError
from tuneforge.model.pooling import POOLINGS
from tuneforge.serve.predictor import Predictor, stored_temperature

ONNX_FILE = "model.onnx"


def default_threads() -> int:
    """Intra-op threads: the cores this process may use (OMP_NUM_THREADS caps it, as for torch), at most 4.

    On the 2-core target that is both cores. Beyond ~4, a batch of short sentences through a small encoder
    stops getting faster while everything else on the machine slows down.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        cores = min(cores, int(env))
    return max(1, min(4, cores))


SPINNING = ("call", "always", "off")


def spinning_mode(value: str | None, label: str | None = None) -> str:
    """`value` as one of SPINNING (None → "call", any case); a UserError naming `label` (default: spinning 'value')
    otherwise. The old bool setting gets a hint."""
    if isinstance(value, bool):  # the setting was a bool before it had three values
        raise UserError(f"spinning={value}: use one of {', '.join(SPINNING)} (True is now 'always', False 'off').")
    mode = (value or "call").lower()
    if mode not in SPINNING:
        raise UserError(f"{label or f'spinning {value!r}'}: use one of {', '.join(SPINNING)} (call is the default).")
    return mode


def open_session(path: str | Path, threads: int | None = None, spinning: str | None = None):
    """A CPU InferenceSession with all graph optimizations and a fixed, small thread pool.

    `spinning` says when idle intra-op threads spin instead of sleeping:
    - "call" (default): while a call runs, then they sleep (ONNX Runtime's `session.force_spinning_stop`). Inside a
      call the second thread picks up each op's work without a wake-up, and between calls the cores are free.
      SST-2 int8 classifier at batch 1, 2 threads: see benchmarks/probe_batch1.json for the p50 of each mode and
      what each costs a PyTorch pipeline interleaved beside it.
    - "always": ONNX Runtime's own default; spinning goes on between calls, so the cores stay busy (in an
      interleaved benchmark, PyTorch work beside it ran 2.5× slower).
    - "off": threads always sleep; every parallel op pays a wake-up, so two threads are no faster than one."""
    import onnxruntime as ort

    spinning = spinning_mode(spinning)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    options.add_session_config_entry("session.intra_op.allow_spinning", "0" if spinning == "off" else "1")
    if spinning == "call":
        options.add_session_config_entry("session.force_spinning_stop", "1")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_forward(session):
    """A numpy → numpy forward of the session's one output (the candidate side of the parity check)."""
    output = session.get_outputs()[0].name

    def run(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return session.run([output], {"input_ids": ids, "attention_mask": mask})[0]

    return run


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


class OnnxPredictor(Predictor):
    """What `tuneforge.load` returns for a folder with model.onnx. Exported classifiers give labels; exported
    encoders give embeddings (mean or cls pooling: the graph outputs only the last hidden state)."""

    def __init__(self, session, tokenizer, config, max_length: int = 128, batch_size: int = 64,
                 normalize: bool = True, folder: str = "model", temperature: float | None = None):
        self.session, self.tokenizer, self.folder = session, tokenizer, folder
        self.max_length, self.batch_size, self.normalize = max_length, batch_size, normalize
        self.model = None  # no PyTorch module behind this predictor
        self.output = session.get_outputs()[0].name
        self._forward = onnx_forward(session)
        self.labels = LabelSpace.from_model_config(config) if self.output == "logits" else None
        self.temperature = temperature if temperature is not None else stored_temperature(config)

    @classmethod
    def load(cls, path: str, threads: int | None = None, spinning: str | None = None, **kwargs) -> OnnxPredictor:
        from transformers import AutoConfig

        from tuneforge.model.artifact import read_manifest
        from tuneforge.model.build import load_tokenizer

        folder = Path(path)
        manifest = read_manifest(folder)
        kwargs.setdefault("max_length", manifest.get("max_length", 128))
        session = open_session(folder / ONNX_FILE, threads, spinning)
        config = AutoConfig.from_pretrained(folder)
        return cls(session, load_tokenizer(str(folder)), config, folder=str(path),
                   temperature=stored_temperature(config, manifest), **kwargs)

    def _outputs(self, data: Encoded):
        pad = self.tokenizer.pad_token_id or 0
        for index in sorted_batches(data.lengths, self.batch_size):
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

    def embed(self, texts: list[str], pooling: str = "mean", return_hidden: bool = False):
        """As Predictor.embed, for `mean` and `cls` pooling."""
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}")
        if self.output != "last_hidden_state":
            raise UserError(f"{self.folder}: this ONNX export is a classifier (it outputs logits only); for "
                            "embeddings export the encoder (`tuneforge export --model minilm-l6`) or use the PyTorch folder.")
        if pooling == "last4":
            raise UserError(f"{self.folder}: --pooling last4 needs every layer; the ONNX graph outputs only the last "
                            "hidden state. Use mean or cls, or the PyTorch model folder.")
        data = self._encode(texts)
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

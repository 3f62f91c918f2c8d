"""The translation decoder step on ONNX Runtime: `LeanDecoder.step`'s math (same weights, fp32) exported once with
`torch.onnx.export` as a decoder-with-past graph (ids, position, past keys/values, cross keys/values, source mask →
logits, present keys/values), run by an `onnxruntime.InferenceSession`. The encoder and the cross-attention
keys/values stay PyTorch (`LeanDecoder.start`, once per batch); only the per-token step, which runs ~20 times per
sentence, moves. Measured (`benchmarks/results/probe_onnx_decoder.json`, the `mini` preset, 4 rows, 2 threads):
1.24-2.16 ms per step vs 2.82-3.24 ms for the lean PyTorch step in fp32 and 1.85-2.39 ms in bf16 (5 rounds): at a
few rows a step is a few dozen small operations, and ONNX Runtime runs them with less per-operation overhead than
eager PyTorch. (A leaner export of the same math, without the source mask and with separate q/k/v, ran 0.89 ms at
c9ca242: room left.)

`OnnxDecoder` has the interface of `seq2seq_forward`'s steps (`start`, `step`, and a state with `reorder`/`keep`), so
`beam.translate_ids` runs it unchanged. The exported file is cached under ~/.cache/tuneforge/onnx/ (or
$TUNEFORGE_CACHE/onnx/) by a fingerprint of the weights, written atomically; a later load reuses it."""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tuneforge.generate.seq2seq_forward import LeanDecoder, _mm

OPSET = 17
FORMAT = 1  # bump when the exported graph changes, so old cached files are not reused


def cache_root() -> Path:
    from tuneforge.data.pack import default_cache_dir  # the one definition of $TUNEFORGE_CACHE

    return default_cache_dir() / "onnx"


def fingerprint(model) -> str:
    """A digest of the decoder's weights, its config and the graph format: same model → same exported file."""
    h = hashlib.sha256(f"{FORMAT}|{torch.__version__}|{model.config.to_json_string()}".encode())
    tensors = [model.lm_head.weight, *model.get_decoder().parameters()]
    bias = getattr(model, "final_logits_bias", None)
    for t in tensors + ([bias] if bias is not None else []):
        h.update(t.detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()[:20]


class _Step(torch.nn.Module):
    """LeanDecoder.step without in-place state: past (layers, 2, rows, heads, t, dim) in, present (…, t+1, …) out;
    cross (layers, 2, rows, heads, source, dim) and an additive source mask (rows, 1, 1, source)."""

    def __init__(self, lean: LeanDecoder):
        super().__init__()
        self.lean = lean

    def forward(self, ids, position, past, cross, mask):
        d = self.lean
        rows = ids.shape[0]
        heads, dim, width, pre = d.heads, d.dim, d.width, d.pre_norm
        x = F.embedding(ids, d.embed) * d.embed_scale + d.positions[position + d.position_offset]
        if d.norm_embedding is not None:
            x = F.layer_norm(x, *d.norm_embedding)
        present = []
        for i, w in enumerate(d.layers):
            h = F.layer_norm(x, *w["ln1"]) if pre else x
            qkv = _mm(h, *w["qkv"]).view(rows, 3, heads, 1, dim)
            k = torch.cat([past[i, 0], qkv[:, 1]], 2)
            v = torch.cat([past[i, 1], qkv[:, 2]], 2)
            present.append(torch.stack([k, v]))
            a = F.scaled_dot_product_attention(qkv[:, 0], k, v, scale=d.scale)
            x = x + _mm(a.reshape(rows, width), *w["o"])
            x = x if pre else F.layer_norm(x, *w["ln1"])
            h = F.layer_norm(x, *w["ln2"]) if pre else x
            q = _mm(h, *w["cq"]).view(rows, heads, 1, dim)
            a = F.scaled_dot_product_attention(q, cross[i, 0], cross[i, 1], attn_mask=mask, scale=d.scale)
            x = x + _mm(a.reshape(rows, width), *w["co"])
            x = x if pre else F.layer_norm(x, *w["ln2"])
            h = F.layer_norm(x, *w["ln3"]) if pre else x
            x = x + _mm(d.act(_mm(h, *w["fc1"])), *w["fc2"])
            x = x if pre else F.layer_norm(x, *w["ln3"])
        if d.norm_final is not None:
            x = F.layer_norm(x, *d.norm_final)
        return _mm(x, *d.head), torch.stack(present)


def export_step(model, path: Path) -> Path:
    """Export the model's decoder step to `path` (atomically: a temp file renamed into place)."""
    import warnings

    lean = LeanDecoder(model, torch.float32)
    layers, heads, dim = lean.count, lean.heads, lean.dim
    step = _Step(lean).eval()
    example = (torch.tensor([lean.model.config.decoder_start_token_id or 0] * 2), torch.tensor(0),
               torch.zeros(layers, 2, 2, heads, 1, dim), torch.zeros(layers, 2, 2, heads, 3, dim),
               torch.zeros(2, 1, 1, 3))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".decoder-", suffix=".onnx")
    os.close(fd)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(step, example, tmp, dynamo=False, opset_version=OPSET,
                              input_names=["ids", "position", "past", "cross", "mask"],
                              output_names=["logits", "present"],
                              dynamic_axes={"ids": {0: "rows"}, "past": {2: "rows", 4: "length"},
                                            "cross": {2: "rows", 4: "source"}, "mask": {0: "rows", 3: "source"},
                                            "present": {2: "rows", 4: "length_out"}, "logits": {0: "rows"}})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


class OnnxState:
    """One batch for `OnnxDecoder`: per sentence the cross keys/values (layers, 2, sentences, heads, source, dim) and
    additive source mask (sentences, 1, 1, source); per row the past keys/values; rows are sentence-major."""

    def __init__(self, cross: np.ndarray, mask: np.ndarray, layers: int, heads: int, dim: int):
        self.cross_s, self.mask_s = cross, mask
        self.sentences = cross.shape[2]
        self.beams = 1
        self.length = 0
        self.past = np.zeros((layers, 2, self.sentences, heads, 0, dim), dtype=np.float32)
        self._expand()

    @property
    def rows(self) -> int:
        return self.sentences * self.beams

    def _expand(self) -> None:
        self.cross = np.repeat(self.cross_s, self.beams, axis=2) if self.beams > 1 else self.cross_s
        self.mask = np.repeat(self.mask_s, self.beams, axis=0) if self.beams > 1 else self.mask_s

    def reorder(self, rows: torch.Tensor) -> None:
        if rows.numel() == self.rows and torch.equal(rows, torch.arange(self.rows, device=rows.device)):
            return
        self.past = np.take(self.past, rows.cpu().numpy(), axis=2)
        beams = rows.numel() // self.sentences
        if beams != self.beams:
            self.beams = beams
            self._expand()

    def keep(self, sentences: torch.Tensor) -> None:
        index = sentences.cpu().numpy()
        rows = (index[:, None] * self.beams + np.arange(self.beams)).reshape(-1)
        self.cross_s, self.mask_s = np.take(self.cross_s, index, axis=2), np.take(self.mask_s, index, axis=0)
        self.past = np.take(self.past, rows, axis=2)
        self.sentences = len(index)
        self._expand()


class OnnxDecoder:
    """The decoder step of a LeanDecoder-eligible model (MBart/BART/Marian, plain linear layers) on ONNX Runtime;
    the encoder and cross keys/values from `LeanDecoder.start` (fp32)."""

    name = "onnxruntime"

    def __init__(self, model, path: Path, threads: int | None = None):
        import onnxruntime as ort

        self.lean = LeanDecoder(model, torch.float32)
        self.max_positions = self.lean.max_positions
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    @classmethod
    def for_model(cls, model, threads: int | None = None) -> OnnxDecoder:
        """The cached export of this model's decoder step (exported now when there is none)."""
        path = cache_root() / f"{fingerprint(model)}.onnx"
        if not path.is_file():
            export_step(model, path)
        return cls(model, path, threads)

    @torch.no_grad()
    def start(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, capacity: int) -> OnnxState:
        state = self.lean.start(input_ids, attention_mask, capacity)
        cross = state.cross.float().numpy()
        mask = np.where(attention_mask[:, None, None, :].cpu().numpy() > 0, 0.0, -1e9).astype(np.float32)
        return OnnxState(cross, mask, self.lean.count, self.lean.heads, self.lean.dim)

    def step(self, state: OnnxState, ids: torch.Tensor) -> torch.Tensor:
        logits, state.past = self.session.run(None, {
            "ids": ids.cpu().numpy().astype(np.int64), "position": np.array(state.length, dtype=np.int64),
            "past": state.past, "cross": state.cross, "mask": state.mask})
        state.length += 1
        return torch.from_numpy(logits)

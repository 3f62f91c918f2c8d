"""PyTorch → ONNX: one graph, inputs input_ids + attention_mask with dynamic batch and sequence axes.

Classifiers export `logits`, with the last layer computed at the first token only (`model.first_token`: what
the head reads); bare encoders export `last_hidden_state` so embeddings can be pooled outside.
We use the dynamo exporter (torch.export). The TorchScript exporter (dynamo=False) traces transformers 5's
attention-mask construction as constants: on a BERT it exported without error yet gave hidden states off by
0.8-3.1 and logits off by ~0.01 (sdpa and eager attention alike); the dynamo graph matched to ~1e-6.

Default opset 23: the exporter then writes each attention block as one standard ONNX `Attention` op and GELU as
`Gelu` (198 nodes for MiniLM-L6 instead of ~450, most of them the masking, reshapes and slices of a decomposed
attention). ONNX Runtime runs it faster at batch 1: int8 1.14-1.15×, fp32 1.05-1.07× in two
runs (benchmarks/results/probe_batch1.json).
Runtimes that do not implement opset 23 take `--opset 18`: the decomposed graph, the same outputs.
"""
from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

from tuneforge.errors import UserError
from tuneforge.model.first_token import first_token_only, use_first_token

DEFAULT_OPSET = 23  # standard Attention and Gelu ops (see the module docstring)
MIN_OPSET = 17  # LayerNormalization is a single op from 17 on
INPUTS = ("input_ids", "attention_mask")
MAX_GRAPH_BYTES = 2_000_000_000  # protobuf's limit for a single-file graph (we write no external data)


def graph_output(model) -> str:
    """`logits` for a sequence classifier, `last_hidden_state` for a bare encoder."""
    return "logits" if type(model).__name__.endswith("ForSequenceClassification") else "last_hidden_state"


def export_module(model):
    """The module that is exported (and that parity runs as the PyTorch reference): ids + mask → one tensor."""
    import torch

    output = graph_output(model)
    if output == "logits":
        use_first_token(model)

    class Graph(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            # A classifier's graph computes the last layer at the first token only (what its head reads).
            with first_token_only(self.inner) if output == "logits" else contextlib.nullcontext():
                return getattr(self.inner(input_ids=input_ids, attention_mask=attention_mask), output)

    return Graph(model.float().eval()).eval()


def torch_forward(module):
    """A numpy → numpy forward of `module`, the reference side of the parity check."""
    import torch

    def run(ids, mask):
        with torch.inference_mode():
            return module(torch.from_numpy(ids), torch.from_numpy(mask)).float().numpy()

    return run


def _example_inputs(model):
    import torch

    # Batch 2 and a padded second row: torch.export specialises sizes 0/1, and the mask path must be general.
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (2, 8), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    return ids, mask


@contextlib.contextmanager
def _quiet():
    """The exporter prints progress lines and logs warnings (e.g. torchvision missing); TuneForge prints its own."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def export_onnx(model, path: Path, opset: int = DEFAULT_OPSET, name: str = "model") -> dict:
    """Write `model` as a single-file ONNX graph at `path`; returns what was exported (for the manifest)."""
    import torch
    from torch.export import Dim

    size = sum(p.numel() for p in model.parameters()) * 4
    if size > MAX_GRAPH_BYTES:
        raise UserError(f"{name}: {size / 1e9:.1f} GB of fp32 weights; single-file ONNX graphs stop at 2 GB. "
                        "Export a smaller model.")
    module, output = export_module(model), graph_output(model)
    batch, sequence = Dim("batch"), Dim("sequence")
    shapes = {"input_ids": {0: batch, 1: sequence}, "attention_mask": {0: batch, 1: sequence}}
    try:
        with _quiet():
            torch.onnx.export(module, _example_inputs(model), str(path), input_names=list(INPUTS),
                              output_names=[output], dynamic_shapes=shapes, opset_version=opset, dynamo=True,
                              external_data=False, verbose=False)
    except Exception as exc:  # the exporter raises many types; the first line says what it could not handle
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise UserError(f"{name}: torch.onnx could not export this model ({type(exc).__name__}: {first}).") from None
    return {"exporter": f"torch.onnx dynamo (torch {torch.__version__})", "opset": opset, "inputs": list(INPUTS),
            "output_name": output, "dynamic_axes": {"batch": 0, "sequence": 1}}

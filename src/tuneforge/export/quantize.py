"""Dynamic int8 quantization of an exported graph: int8 weights per output channel, activations at run time.

Measured on a MiniLM-L6 SST-2 classifier (872 dev sentences): per channel kept accuracy (86.47% vs 86.35%
fp32) with 98.7% label agreement; per tensor lost 0.46 points with 96.8% agreement. onnxruntime's
pre-processing (quant_pre_process) changed nothing there, so it is skipped.

ONNX Runtime's quantizer takes any node named `Attention` for its own contrib op (com.microsoft) and rewrites it
as QAttention, which breaks on the standard ONNX `Attention` (opset 23+) that our exports use; so the op types to
quantize are its dynamic defaults without `Attention`. The attention products stay fp32, as they did before.
"""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path


@contextlib.contextmanager
def _quiet_root_logger():
    # quantize_dynamic logs "consider pre-processing" on the root logger; measured above, not needed.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def quantize_int8(src: Path, dst: Path, per_channel: bool = True) -> dict:
    """Write the int8 version of graph `src` to `dst`; returns what was done (for the manifest)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.registry import IntegerOpsRegistry

    ops = sorted(op for op in IntegerOpsRegistry if op != "Attention")
    with _quiet_root_logger():
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=per_channel,
                         op_types_to_quantize=ops)
    return {"method": "onnxruntime dynamic", "weights": "int8", "per_channel": per_channel,
            "activations": "uint8, quantized at run time"}

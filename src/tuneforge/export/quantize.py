"""Dynamic int8 quantization of an exported graph: int8 weights per output channel, activations at run time.

Measured on a MiniLM-L6 SST-2 classifier (872 dev sentences): per channel kept accuracy (86.47% vs 86.35%
fp32) with 98.7% label agreement; per tensor lost 0.46 points with 96.8% agreement. onnxruntime's
pre-processing (quant_pre_process) changed nothing there, so it is skipped.
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

    with _quiet_root_logger():
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=per_channel)
    return {"method": "onnxruntime dynamic", "weights": "int8", "per_channel": per_channel,
            "activations": "uint8, quantized at run time"}

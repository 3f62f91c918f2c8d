"""Export: PyTorch model → ONNX graph (onnx.py), int8 quantization (quantize.py), parity with PyTorch (parity.py),
and running a graph with ONNX Runtime (runtime.py: the sessions both the parity check and serving use)."""

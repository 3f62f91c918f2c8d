"""Export: PyTorch model → ONNX graph (onnx.py), int8 quantization (quantize.py), parity with PyTorch (parity.py)."""

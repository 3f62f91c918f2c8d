"""Dynamic int8 quantization of an exported graph: int8 weights per output channel, activations at run time.

Measured on MiniLM-L6 SST-2 classifiers (872 dev sentences; python -m benchmarks.bench_onnx_parity): a mid-training
checkpoint kept accuracy per channel (86.47% vs 86.35% fp32, 98.1% label agreement) and lost 0.46 points per tensor
(97.2%); the final model moved −0.11 points per channel (98.1%) and +0.11 per tensor (97.8%). Per channel is the
steadier of the two. onnxruntime's pre-processing (quant_pre_process) changed nothing there, so it is skipped.

ONNX Runtime's quantizer takes any node named `Attention` for its own contrib op (com.microsoft) and rewrites it
as QAttention, which breaks on the standard ONNX `Attention` (opset 23+) that our exports use; so the op types to
quantize are its dynamic defaults without `Attention`. The attention products stay fp32, as they did before.

Activations get one scale per row (token), not one per tensor (`per_row_activations`). onnxruntime's
`DynamicQuantizeLinear` takes its range from the whole input, every token of every text in the call and the padding
with them, so a text's probabilities depended on the texts batched with it: by up to 0.062 on MiniLM-L6 (a text
alone vs in a batch of 32 SST-2 sentences). Per row, the integer product of a row is the same in any batch, and
ONNX Runtime's attention gives the same bits for a text with or without padding beside it (measured per layer), so
a text's logits are identical alone and batched. Cost, MiniLM-L6 classifier, one thread: see docs/commands/export.md.
Graphs exported before this (per tensor) still load; `tuneforge.load` runs them one text per forward pass.
"""
from __future__ import annotations

from pathlib import Path

from tuneforge.logs import quieted


def quantize_int8(src: Path, dst: Path, per_channel: bool = True) -> dict:
    """Write the int8 version of graph `src` to `dst`; returns what was done (for the manifest)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.registry import IntegerOpsRegistry

    ops = sorted(op for op in IntegerOpsRegistry if op != "Attention")
    with quieted():  # quantize_dynamic logs "consider pre-processing" on the root logger; measured, not needed
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=per_channel,
                         op_types_to_quantize=ops)
    graph = onnx.load(str(dst))
    rows = per_row_activations(graph)
    onnx.save(graph, str(dst))
    # anything left per tensor makes the predictor run one text per forward pass (`per_tensor_activations`)
    left = sum(n.op_type == "DynamicQuantizeLinear" for n in graph.graph.node)
    return {"method": "onnxruntime dynamic", "weights": "int8", "per_channel": per_channel,
            "activations": "uint8, one scale per row (token), quantized at run time",
            "activation_scales": "per tensor" if left else "per row", "per_row_inputs": rows}


ROW_SCALE = 1.0 / 127  # a row divided by its max |value| lies in [-1, 1]: quantized to 1..255 around 128
ROW_ZERO_POINT = 128


def per_row_activations(model) -> int:
    """Rewrite, in place, each `DynamicQuantizeLinear` (one activation scale per tensor) that feeds only
    `MatMulInteger → Cast → Mul(scales)` chains, as quantize_dynamic writes them, into a per-row quantization:

        h = max(ReduceMax(|x|, last axis), tiny)        one scale per row
        q = QuantizeLinear(x / h, 1/127, 128)           uint8, symmetric around 128
        y = MatMulIntegerToFloat(q, W, 1/127, w_scale, 128, w_zero) · h

    (MatMulIntegerToFloat is ONNX Runtime's com.microsoft op, which its optimizer fuses the old chains into anyway.)
    The bias `Add` after each matmul stays as it was. Returns how many activation inputs were rewritten; any other
    `DynamicQuantizeLinear` stays per tensor (`per_tensor_activations` then says so)."""
    import numpy as np
    from onnx import helper, numpy_helper

    graph = model.graph
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    consumers: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    producers = {o: n for n in graph.node for o in n.output}
    outputs = {o.name for o in graph.output}
    replace, drop, inits, rewritten = {}, set(), [], 0
    for n in graph.node:
        if n.op_type != "DynamicQuantizeLinear":
            continue
        x, (xq, xs, xzp) = n.input[0], n.output
        chains = _matmul_chains(xq, xs, xzp, consumers, producers, outputs)
        if chains is None:
            continue
        rewritten += 1
        p = f"{xq}_per_row"
        if opset >= 18:
            inits.append(numpy_helper.from_array(np.array([-1], np.int64), f"{p}_axes"))
            reduce = helper.make_node("ReduceMax", [f"{p}_abs", f"{p}_axes"], [f"{p}_max"], f"{p}_ReduceMax",
                                      keepdims=1)
        else:
            reduce = helper.make_node("ReduceMax", [f"{p}_abs"], [f"{p}_max"], f"{p}_ReduceMax", axes=[-1], keepdims=1)
        inits += [numpy_helper.from_array(np.array(1e-30, np.float32), f"{p}_tiny"),
                  numpy_helper.from_array(np.array(ROW_SCALE, np.float32), xs),
                  numpy_helper.from_array(np.array(ROW_ZERO_POINT, np.uint8), xzp)]
        replace[xq] = [helper.make_node("Abs", [x], [f"{p}_abs"], f"{p}_Abs"), reduce,
                       helper.make_node("Max", [f"{p}_max", f"{p}_tiny"], [f"{p}_h"], f"{p}_Max"),
                       helper.make_node("Div", [x, f"{p}_h"], [f"{p}_unit"], f"{p}_Div"),
                       helper.make_node("QuantizeLinear", [f"{p}_unit", xs, xzp], [xq], f"{p}_QuantizeLinear")]
        for matmul, cast, mul, scales, w_scale in chains:
            y = mul.output[0]
            replace[matmul.output[0]] = [
                helper.make_node("MatMulIntegerToFloat", [xq, matmul.input[1], xs, w_scale, xzp, *matmul.input[3:4]],
                                 [f"{y}_unit"], f"{y}_MatMulIntegerToFloat", domain="com.microsoft"),
                helper.make_node("Mul", [f"{y}_unit", f"{p}_h"], [y], f"{y}_row_scale")]
            drop |= {cast.output[0], mul.output[0], scales.output[0]}
    if not rewritten:
        return 0
    nodes = [m for n in graph.node if n.output[0] not in drop for m in replace.get(n.output[0], [n])]
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(inits)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return rewritten


def _matmul_chains(xq: str, xs: str, xzp: str, consumers: dict, producers: dict, outputs: set):
    """[(MatMulInteger, Cast, Mul, scales Mul, weight scale name)], one per use of the quantized input; None when
    the quantized input, its scale or zero point is used any other way."""
    chains = []
    for matmul in consumers.get(xq, []):
        if matmul.op_type != "MatMulInteger" or matmul.input[0] != xq or list(matmul.input[2:3]) != [xzp]:
            return None
        after = consumers.get(matmul.output[0], [])
        if len(after) != 1 or after[0].op_type != "Cast":
            return None
        cast = after[0]
        after = consumers.get(cast.output[0], [])
        if len(after) != 1 or after[0].op_type != "Mul":
            return None
        mul = after[0]
        scales = producers.get(mul.input[1] if mul.input[0] == cast.output[0] else mul.input[0])
        if scales is None or scales.op_type != "Mul" or xs not in scales.input:
            return None
        w_scale = [i for i in scales.input if i != xs]
        if len(w_scale) != 1 or len(consumers.get(scales.output[0], [])) != 1:
            return None
        if {matmul.output[0], cast.output[0], scales.output[0]} & outputs:
            return None
        chains.append((matmul, cast, mul, scales, w_scale[0]))
    uses = {n.output[0] for n in consumers.get(xs, []) + consumers.get(xzp, [])}
    allowed = {c[0].output[0] for c in chains} | {c[3].output[0] for c in chains}
    if not chains or not uses <= allowed or {xs, xzp} & outputs:
        return None
    return chains


def per_tensor_activations(path, export: dict | None = None) -> bool:
    """Whether graph `path` quantizes some activation with one scale per tensor (DynamicQuantizeLinear): its outputs
    then depend on what else is in the batch. int8 exports made before per-row activations have them.

    `export`, a `tuneforge export` manifest section, answers without reading the graph; without it the graph is read."""
    if export is not None:
        quantization = export.get("quantization")
        return bool(quantization) and quantization.get("activation_scales") != "per row"
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return any(n.op_type in ("DynamicQuantizeLinear", "DynamicQuantizeMatMul") for n in graph.node)

"""Would ONNX Runtime's offline transformer fusions make `tuneforge export` graphs faster at batch 1? (issue 4)

Usage:  python -m benchmarks.probes.probe_fusion [--model runs/bench-sst2-full/run/final] [--rows 300] [--rounds 4]

`tuneforge export` writes standard-op graphs ("plain"), fp32 and int8. The "fused" twins are what an export step
running `onnxruntime.transformers.optimizer.optimize_model(model_type="bert", opt_level=0)` would ship: the fp32
graph rewritten with SkipLayerNormalization / BiasGelu contrib ops, and int8 quantized from that fused graph
(same per-channel dynamic quantization as `--quantize int8`). All four folders are loaded with `tuneforge.load`
beside `transformers.pipeline`, and every SST-2 dev sentence is timed at batch 1 through all five, interleaved per
sentence (order rotated), `--rounds` passes.
Reports p50 per backend, fused over plain latency per precision (< 1: fusion helps), each over the pipeline, and
the labels' agreement between fused and plain. Same threads for all (ONNX Runtime intra-op = torch threads, no
spinning, as `tuneforge.load` by default). Writes benchmarks/results/probe_fusion.json (--out).
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.common import (
    RESULTS,
    ROOT,
    add_output_args,
    environment,
    export_onnx,
    guard_output,
    invocation,
    load_average,
    read_sst2,
    shown,
    write_result,
)
from tuneforge.export.quantize import quantize_int8


def after_session(path: Path) -> dict:
    """What ONNX Runtime's own session optimizations (ORT_ENABLE_ALL, as `tuneforge.load`) make of a graph."""
    import collections

    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    options.optimized_model_filepath = str(path.with_suffix(".session.onnx"))
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    nodes = onnx.load(options.optimized_model_filepath).graph.node
    ops = collections.Counter(n.op_type for n in nodes)
    return {"nodes": len(nodes), **{k: ops[k] for k in ("SkipLayerNormalization", "BiasGelu", "Gelu", "Erf")}}


def fuse(src: Path, dst: Path, model: str) -> dict:
    """The offline BERT fusions of onnxruntime.transformers on graph `src`, written to `dst`; fused-op counts."""
    from onnxruntime.transformers.optimizer import optimize_model
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model)
    graph = optimize_model(str(src), model_type="bert", num_heads=config.num_attention_heads,
                           hidden_size=config.hidden_size, opt_level=0)
    graph.save_model_to_file(str(dst))
    return {k: v for k, v in graph.get_fused_operator_statistics().items() if v}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "runs" / "bench-sst2-full" / "run" / "final"))
    ap.add_argument("--rows", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=10)
    add_output_args(ap, RESULTS / "probe_fusion.json")
    args = ap.parse_args()
    started = guard_output(args.out, args.allow_dirty)

    import torch
    from transformers import pipeline
    from transformers.utils import logging

    import tuneforge

    torch.set_num_threads(args.threads)
    logging.disable_progress_bar()
    texts, _ = read_sst2("dev", args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        plain = export_onnx(args.model, Path(tmp) / "plain")
        folders = {f"{kind}_plain": Path(e["folder"]) for kind, e in plain.items()}
        fused = {kind: Path(tmp) / "fused" / kind for kind in plain}
        for kind, folder in fused.items():
            shutil.copytree(folders[f"{kind}_plain"], folder)
        stats = fuse(folders["onnx_fp32_plain"] / "model.onnx", fused["onnx_fp32"] / "model.onnx", args.model)
        quantize_int8(fused["onnx_fp32"] / "model.onnx", fused["onnx_int8"] / "model.onnx")
        folders.update({f"{kind}_fused": folder for kind, folder in fused.items()})
        sessions = {style: after_session(folders[f"onnx_fp32_{style}"] / "model.onnx") for style in ("plain", "fused")}
        backends = {name: tuneforge.load(str(folder), threads=args.threads) for name, folder in sorted(folders.items())}
        pipe = pipeline("text-classification", model=args.model, device="cpu")
        call = {"pipeline": lambda t: pipe(t)[0]["label"],
                **{name: (lambda t, p=p: p.predict([t])[0]["label"]) for name, p in backends.items()}}
        names = list(call)
        ms = {n: [] for n in names}
        labels = {n: [] for n in names}
        for r in range(args.rounds):
            for i, text in enumerate(texts):
                k = (i + r) % len(names)
                for n in names[k:] + names[:k]:
                    start = time.perf_counter()
                    label = call[n](text)
                    if i >= args.warmup or r:
                        ms[n].append((time.perf_counter() - start) * 1000)
                    if r == 0:
                        labels[n].append(label)
    p50 = {n: round(statistics.median(v), 3) for n, v in ms.items()}
    ratios = {}
    for kind in ("onnx_fp32", "onnx_int8"):
        ratios[f"{kind}_fused_over_plain"] = round(p50[f"{kind}_fused"] / p50[f"{kind}_plain"], 3)
        for style in ("fused", "plain"):
            ratios[f"{kind}_{style}_over_pipeline"] = round(p50[f"{kind}_{style}"] / p50["pipeline"], 3)
    agreement = {kind: sum(a == b for a, b in zip(labels[f"{kind}_fused"], labels[f"{kind}_plain"])) / len(texts)
                 for kind in ("onnx_fp32", "onnx_int8")}
    result = {"benchmark": "probe_fusion", "command": invocation("probes.probe_fusion"), "rows": len(texts),
              "rounds": args.rounds, "p50_ms": p50, "ratios": ratios, "label_agreement_fused_vs_plain": agreement,
              "fused_operators": stats,
              "fp32_graph_after_session_optimizations": sessions,
              "note": "ratios are latency over latency (< 1: the first one is faster); batch 1, every backend "
                      "interleaved per sentence",
              "machine": {**environment(args.threads), "load_average_at_end": load_average()}}
    path = write_result(args.out, result, started, args.allow_dirty)
    print(json.dumps({"p50_ms": p50, "ratios": ratios, "agreement": agreement}, indent=2))
    print(f"wrote {shown(path)}")


if __name__ == "__main__":
    main()

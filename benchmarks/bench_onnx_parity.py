"""ONNX export of the default model: fp32 / int8 parity with PyTorch and batch-1 latency vs PyTorch eager.

Usage:  python -m benchmarks.bench_onnx_parity [--classifier runs/bench-sst2-full/run/final] [--threads 1]
Exports the bare encoder (minilm-l6) and, when given, a fine-tuned SST-2 classifier, each fp32 and int8 (per
channel) with `tuneforge export --check-data` on SST-2 dev (872 sentences), plus an int8 per-tensor graph for
comparison. Latency: `predict([text])` / `embed([text])` one dev sentence at a time (tokenization included),
the backends interleaved per sentence so machine noise hits them alike. Writes benchmarks/results/onnx_parity.json
(--out).
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.common import RESULTS, SST2, add_output_args, environment, guard_output, shown, write_result

DEV = SST2 / "dev.tsv"


def export_both(model: str, work: Path) -> dict:
    from tuneforge.recipes.export import export

    out = {}
    for quantize in ("none", "int8"):
        t0 = time.time()
        result = export(model, str(work / f"{Path(model).name}-{quantize}"), quantize=quantize, check_data=str(DEV),
                        text_column="sentence")
        out[quantize] = {"seconds": round(time.time() - t0, 1), "folder": result["folder"], "parity": result["parity"],
                         "bytes": result["int8_bytes" if quantize == "int8" else "fp32_bytes"]}
    return out


def per_tensor_parity(model_path: str, fp32_folder: str, work: Path) -> dict:
    """The same check for int8 without per-channel scales (the choice quantize.py does not make)."""
    import numpy as np

    from tuneforge.config import DataConfig
    from tuneforge.data.encode import encode_texts
    from tuneforge.data.labels import LabelSpace
    from tuneforge.data.splits import load_labelled
    from tuneforge.export.onnx import export_module, torch_forward
    from tuneforge.export.parity import measure
    from tuneforge.export.quantize import quantize_int8
    from tuneforge.model.build import load_trained
    from tuneforge.serve.onnx_backend import onnx_forward, open_session

    model, tokenizer = load_trained(model_path)
    space = LabelSpace.from_model_config(model.config)
    split = load_labelled(str(DEV), DataConfig(text_column="sentence"), "dev")
    quantize_int8(Path(fp32_folder) / "model.onnx", work / "per_tensor.onnx", per_channel=False)
    data = encode_texts(tokenizer, split.texts, 128)
    result = measure(torch_forward(export_module(model)), {"int8": onnx_forward(open_session(work / "per_tensor.onnx"))},
                     data, tokenizer.pad_token_id or 0, classifier=True, labels=np.asarray(space.encode(split.labels)))
    return result["int8"]


def latency(folders: dict[str, str], texts: list[str], threads: int, classifier: bool) -> dict:
    import torch

    import tuneforge

    torch.set_num_threads(threads)
    predictors = {name: tuneforge.load(f, **({} if name == "pytorch" else {"threads": threads}))
                  for name, f in folders.items()}
    call = (lambda p, t: p.predict([t])) if classifier else (lambda p, t: p.embed([t]))
    for p in predictors.values():  # warm-up
        for t in texts[:5]:
            call(p, t)
    times = {name: [] for name in predictors}
    for t in texts:
        for name, p in predictors.items():
            t0 = time.perf_counter()
            call(p, t)
            times[name].append((time.perf_counter() - t0) * 1000)
    out = {name: {"median_ms": round(statistics.median(v), 2), "p90_ms": round(sorted(v)[int(0.9 * len(v))], 2)}
           for name, v in times.items()}
    for name in out:
        out[name]["speedup_vs_pytorch"] = round(out["pytorch"]["median_ms"] / out[name]["median_ms"], 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--classifier", help="a fine-tuned SST-2 final/ folder (e.g. runs/bench-sst2-full/run/final)")
    ap.add_argument("--threads", type=int, default=1, help="torch and onnxruntime intra-op threads for latency")
    ap.add_argument("--latency-texts", type=int, default=100, help="dev sentences timed one at a time")
    add_output_args(ap, RESULTS / "onnx_parity.json")
    args = ap.parse_args()
    started = guard_output(args.out, args.allow_dirty)
    from tuneforge.data.sources import read_texts

    texts = read_texts(str(DEV), "sentence")[: args.latency_texts]
    result = {"benchmark": "onnx_parity", "data": "SST-2 dev (872)", "threads": args.threads,
              "environment": environment(args.threads, ("onnxruntime", "onnx"))}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        enc = export_both("minilm-l6", work)
        result["encoder"] = {k: {kk: vv for kk, vv in v.items() if kk != "folder"} for k, v in enc.items()}
        result["encoder"]["latency_embed_batch1"] = latency(
            {"pytorch": "minilm-l6", "onnx_fp32": enc["none"]["folder"], "onnx_int8": enc["int8"]["folder"]},
            texts, args.threads, classifier=False)
        if args.classifier:
            cls = export_both(args.classifier, work)
            result["classifier"] = {"model": args.classifier,
                                    **{k: {kk: vv for kk, vv in v.items() if kk != "folder"} for k, v in cls.items()}}
            result["classifier"]["int8_per_tensor"] = per_tensor_parity(args.classifier, cls["none"]["folder"], work)
            result["classifier"]["latency_predict_batch1"] = latency(
                {"pytorch": args.classifier, "onnx_fp32": cls["none"]["folder"], "onnx_int8": cls["int8"]["folder"]},
                texts, args.threads, classifier=True)
    path = write_result(args.out, result, started, args.allow_dirty)
    print(json.dumps(result, indent=2))
    print(f"wrote {shown(path)}")


if __name__ == "__main__":
    main()

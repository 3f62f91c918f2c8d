"""Would an ONNX export of the translation decoder (with its KV cache) beat the PyTorch step? Issue 19 asks for the
export only if it does. One process, side by side: the `mini` preset (untrained; the speed does not depend on the
weights), 4 decoder rows (one sentence, beam 4), a 15-token source, 21 steps per decode; the PyTorch side is
TuneForge's lean decoder step (`LeanDecoder.step`, fp32 and bf16), the ONNX side `generate.seq2seq_onnx.OnnxDecoder`:
the same step exported with `torch.onnx.export` (past keys/values in, present out, the usual decoder-with-past
layout) run by ONNX Runtime (fp32; the CPU provider, all graph optimisations). Before timing, the ONNX logits are
checked against the lean step's. (The result at c9ca242 was measured with the script's own copy of the step module,
since replaced by the product's, which computes the same.) Reported: ms per decoder step of each side, per round, and the ratio (min over rounds).

Usage:  python -m benchmarks.probe_onnx_decoder [--rounds 5] [--threads 2] [--out /tmp/x.json]
Writes benchmarks/results/probe_onnx_decoder.json by default.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from benchmarks.common import RESULTS, add_output_args, environment, guard_output, invocation, shown, write_result

ROWS, SOURCE, STEPS = 4, 15, 21


def build_model():
    import torch
    from transformers import MBartConfig, MBartForConditionalGeneration

    from tuneforge.model.seq2seq import SEQ2SEQ_PRESETS

    shape = SEQ2SEQ_PRESETS["mini"]
    torch.manual_seed(0)
    config = MBartConfig(vocab_size=8000, max_position_embeddings=256, d_model=shape.d_model,
                         encoder_layers=shape.encoder_layers, decoder_layers=shape.decoder_layers,
                         encoder_attention_heads=shape.heads, decoder_attention_heads=shape.heads,
                         encoder_ffn_dim=shape.ffn, decoder_ffn_dim=shape.ffn, activation_function="gelu",
                         dropout=0.0, scale_embedding=True, pad_token_id=1, eos_token_id=2, bos_token_id=0,
                         decoder_start_token_id=2, forced_eos_token_id=None)
    config.normalize_before = True
    return MBartForConditionalGeneration(config).eval().requires_grad_(False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    add_output_args(ap, RESULTS / "probe_onnx_decoder.json")
    args = ap.parse_args()
    started = guard_output(args.out, args.allow_dirty)
    import os

    import numpy as np
    import torch

    from tuneforge.generate.seq2seq_forward import LeanDecoder
    from tuneforge.generate.seq2seq_onnx import OnnxDecoder

    torch.set_num_threads(args.threads)
    env = environment(args.threads, extra=("onnx", "onnxruntime"))
    model = build_model()
    g = torch.Generator().manual_seed(1)
    source = torch.randint(4, 8000, (1, SOURCE), generator=g)
    fed = torch.randint(4, 8000, (STEPS, ROWS), generator=g)
    fed[0] = model.config.decoder_start_token_id

    def decode(forward):
        def run():
            state = forward.start(source, torch.ones_like(source), capacity=STEPS + 1)
            state.reorder(torch.zeros(ROWS, dtype=torch.long))  # one sentence, 4 beams
            return [forward.step(state, fed[t]) for t in range(STEPS)]
        return run

    with tempfile.TemporaryDirectory(prefix="probe-onnx-") as tmp:
        os.environ["TUNEFORGE_CACHE"] = tmp  # a fresh export, not a cached one
        onnx = OnnxDecoder.for_model(model, args.threads)
        sides = {"lean_fp32": decode(LeanDecoder(model)), "lean_bf16": decode(LeanDecoder(model, torch.bfloat16)),
                 "onnxruntime_fp32": decode(onnx)}
        want, got = sides["lean_fp32"](), sides["onnxruntime_fp32"]()
        parity = max(float(np.abs(a.numpy() - b.numpy()).max()) for a, b in zip(want, got))
        if parity > 1e-3:
            raise SystemExit(f"the ONNX decoder step disagrees with the lean step: max |logit diff| {parity:.2e}")
        for fn in sides.values():
            fn()
        rounds = []
        for r in range(args.rounds):
            names = list(sides) if r % 2 == 0 else list(sides)[::-1]
            ms = {}
            for name in names:
                start = time.perf_counter()
                for _ in range(5):
                    sides[name]()
                ms[name] = round((time.perf_counter() - start) / (5 * STEPS) * 1000, 3)
            rounds.append(ms)
            print(f"round {r + 1}: " + ", ".join(f"{n} {v} ms/step" for n, v in ms.items()), flush=True)
    ratios = {f"{other}_over_{name}": {"per_round": [round(x[other] / x[name], 3) for x in rounds]}
              for name, other in (("lean_fp32", "onnxruntime_fp32"), ("lean_bf16", "onnxruntime_fp32"))}
    for value in ratios.values():
        value["min"], value["median"] = min(value["per_round"]), statistics.median(value["per_round"])
    result = {"benchmark": "probe_onnx_decoder", "model": "untrained preset mini (256 wide, 3+3 layers, vocab 8000)",
              "rows": ROWS, "source_tokens": SOURCE, "steps": STEPS, "threads": args.threads,
              "onnx_parity_max_abs_logit_diff": parity, "ms_per_step": rounds, "ratios": ratios,
              "onnx_beats_pytorch": min(x["onnxruntime_fp32"] for x in rounds) < min(x["lean_fp32"] for x in rounds),
              "command": invocation("probe_onnx_decoder")}
    path = write_result(args.out, result, started, args.allow_dirty, env)
    print(f"ONNX Runtime / lean fp32 ms per step: min ratio {ratios['onnxruntime_fp32_over_lean_fp32']['min']}; "
          f"written to {shown(path)}")


if __name__ == "__main__":
    main()

"""Would an ONNX export of the translation decoder (with its KV cache) beat the PyTorch step? Issue 19 asks for the
export only if it does. One process, side by side: the `mini` preset (untrained; the speed does not depend on the
weights), 4 decoder rows (one sentence, beam 4), a 15-token source, 21 steps per decode; the PyTorch side is
TuneForge's lean decoder step (`LeanDecoder.step`, fp32 and bf16), the ONNX side the same step math exported with
`torch.onnx.export` (past keys/values in, present out, the usual decoder-with-past layout) run by ONNX Runtime
(fp32; the CPU provider, all graph optimisations). Before timing, the ONNX logits are checked against the lean
step's. Reported: ms per decoder step of each side, per round, and the ratio (min over rounds).

Usage:  python -m benchmarks.probe_onnx_decoder [--rounds 5] [--threads 2] [--out /tmp/x.json]
Writes benchmarks/results/probe_onnx_decoder.json by default.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

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


def step_module(model):
    """The lean decoder step as a module: (ids (rows,), position (), past (layers, 2, rows, heads, t, dim), cross
    (layers, 2, rows, heads, source, dim)) → (logits (rows, vocab), present (layers, 2, rows, heads, t+1, dim))."""
    import torch
    import torch.nn.functional as F

    from tuneforge.generate.seq2seq_forward import LeanDecoder

    decoder = model.get_decoder()
    config = model.config
    heads, width = config.decoder_attention_heads, config.d_model
    dim = width // heads
    lean = LeanDecoder(model)  # its embedding scale and position offset, read the way the lean step reads them
    scale, offset = lean.embed_scale, lean.position_offset

    class Step(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.decoder, self.head, self.bias = decoder, model.lm_head, model.final_logits_bias

        def forward(self, ids, position, past, cross):
            d = self.decoder
            rows = ids.shape[0]
            x = F.embedding(ids, d.embed_tokens.weight) * scale + d.embed_positions.weight[position + offset]
            x = d.layernorm_embedding(x)
            present = []
            for i, layer in enumerate(d.layers):
                sa, ca = layer.self_attn, layer.encoder_attn
                h = layer.self_attn_layer_norm(x)
                q = sa.q_proj(h).view(rows, heads, 1, dim)
                k = torch.cat([past[i, 0], sa.k_proj(h).view(rows, heads, 1, dim)], 2)
                v = torch.cat([past[i, 1], sa.v_proj(h).view(rows, heads, 1, dim)], 2)
                present.append(torch.stack([k, v]))
                a = F.scaled_dot_product_attention(q, k, v)
                x = x + sa.out_proj(a.reshape(rows, width))
                h = layer.encoder_attn_layer_norm(x)
                q = ca.q_proj(h).view(rows, heads, 1, dim)
                a = F.scaled_dot_product_attention(q, cross[i, 0], cross[i, 1])
                x = x + ca.out_proj(a.reshape(rows, width))
                h = layer.final_layer_norm(x)
                x = x + layer.fc2(layer.activation_fn(layer.fc1(h)))
            x = d.layer_norm(x)
            return self.head(x) + self.bias[0], torch.stack(present)

    return Step().eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    add_output_args(ap, RESULTS / "probe_onnx_decoder.json")
    args = ap.parse_args()
    started = guard_output(args.out, args.allow_dirty)
    import numpy as np
    import onnxruntime as ort
    import torch

    from tuneforge.generate.seq2seq_forward import LeanDecoder

    torch.set_num_threads(args.threads)
    env = environment(args.threads, extra=("onnx", "onnxruntime"))
    model = build_model()
    config = model.config
    layers, heads = config.decoder_layers, config.decoder_attention_heads
    dim = config.d_model // heads
    g = torch.Generator().manual_seed(1)
    source = torch.randint(4, 8000, (1, SOURCE), generator=g)
    fed = torch.randint(4, 8000, (STEPS, ROWS), generator=g)
    fed[0] = config.decoder_start_token_id

    def lean(dtype):
        forward = LeanDecoder(model, dtype)

        def run():
            state = forward.start(source, torch.ones_like(source), capacity=STEPS + 1)
            state.reorder(torch.zeros(ROWS, dtype=torch.long))  # one sentence, 4 beams
            out = []
            for t in range(STEPS):
                out.append(forward.step(state, fed[t]))
            return out
        return run

    step = step_module(model)
    with tempfile.TemporaryDirectory(prefix="probe-onnx-") as tmp:
        path = Path(tmp) / "decoder.onnx"
        cross = torch.randn(layers, 2, ROWS, heads, SOURCE, dim)
        past = torch.zeros(layers, 2, ROWS, heads, 1, dim)
        torch.onnx.export(step, (fed[0], torch.tensor(0), past, cross), str(path), dynamo=False, opset_version=17,
                          input_names=["ids", "position", "past", "cross"], output_names=["logits", "present"],
                          dynamic_axes={"ids": {0: "rows"}, "past": {2: "rows", 4: "length"},
                                        "cross": {2: "rows", 4: "source"}, "present": {2: "rows", 4: "length1"}})
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

        # the same decode on ONNX: cross keys/values from the lean decoder's own start (the encoder stays PyTorch)
        forward = LeanDecoder(model)
        state = forward.start(source, torch.ones_like(source), capacity=STEPS + 1)
        cross_np = state.cross.expand(-1, -1, ROWS, -1, -1, -1).contiguous().numpy()

        def onnx_run():
            present = np.zeros((layers, 2, ROWS, heads, 0, dim), dtype=np.float32)
            out = []
            for t in range(STEPS):
                logits, present = session.run(None, {"ids": fed[t].numpy(), "position": np.array(t),
                                                     "past": present, "cross": cross_np})
                out.append(logits)
            return out

        want = lean(None)()
        got = onnx_run()
        parity = max(float(np.abs(a.numpy() - b).max()) for a, b in zip(want, got))
        if parity > 1e-3:
            raise SystemExit(f"the ONNX decoder step disagrees with the lean step: max |logit diff| {parity:.2e}")
        sides = {"lean_fp32": lean(None), "lean_bf16": lean(torch.bfloat16), "onnxruntime_fp32": onnx_run}
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

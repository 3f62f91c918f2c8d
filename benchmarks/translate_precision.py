"""Does bf16 or ONNX decoding cost BLEU? A trained translation model decodes a test set three times, side by side in
one process: the PyTorch step in fp32 and in bf16 (bf16 copies of the decoder's matrices), and the decoder step on
ONNX Runtime (fp32; `tuneforge translate`'s default `--decoder auto` for such a model). Beam 4, the Translator's default batching (32 sentences, sorted by
length), the same sources; rounds alternate which precision goes first.

Usage:  python -m benchmarks.translate_precision --model runs/bench-multi30k-de-en/final \
            --source ../shared/data/multi30k/test_2016_flickr.de --reference ../shared/data/multi30k/test_2016_flickr.en
        [--rounds 2] [--threads 2] [--out benchmarks/results/translate_precision_de-en.json]

Reported per precision: sacreBLEU BLEU and chrF (with signatures and 95% bootstrap intervals), sentences/s of each
round (wall time of `Translator.translate`, tokenizing and detokenising included), and how many output lines are
identical to the fp32 step's.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmarks.common import (RESULTS, add_output_args, environment, guard_output, invocation, load_average, shown,
                               write_result)

PRECISIONS = ("fp32", "bf16", "onnx")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a trained encoder-decoder folder (a translation run's final/)")
    ap.add_argument("--source", required=True, help="source sentences, one per line")
    ap.add_argument("--reference", required=True, help="reference translations, one per line")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--beams", type=int, default=4)
    add_output_args(ap, None)
    args = ap.parse_args()
    pair = Path(args.source).suffix.lstrip(".") + "-" + Path(args.reference).suffix.lstrip(".")
    out = Path(args.out) if args.out else RESULTS / f"translate_precision_{pair}.json"
    started = guard_output(out, args.allow_dirty)
    import torch

    from tuneforge.evaluate.translation import bleu_chrf
    from tuneforge.generate.translate import Translator

    torch.set_num_threads(args.threads)
    env = environment(args.threads, extra=("sacrebleu",))
    sources = Path(args.source).read_text(encoding="utf-8").splitlines()
    refs = Path(args.reference).read_text(encoding="utf-8").splitlines()
    translator = Translator.load(args.model)
    from tuneforge.generate.seq2seq_onnx import OnnxDecoder

    onnx = OnnxDecoder.for_model(translator.model, args.threads)
    translator.translate(sources[:4], beams=args.beams)  # warm-up: lazy imports, first allocations
    hyps: dict[str, list[str]] = {}
    speed: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    for r in range(args.rounds):
        for precision in PRECISIONS if r % 2 == 0 else PRECISIONS[::-1]:
            translator.precision = "fp32" if precision == "onnx" else precision
            translator.onnx = onnx if precision == "onnx" else None
            start = time.perf_counter()
            got = translator.translate(sources, beams=args.beams)
            speed[precision].append(round(len(sources) / (time.perf_counter() - start), 2))
            if precision in hyps and got != hyps[precision]:
                raise SystemExit(f"{precision}: round {r + 1} translated differently from round 1")
            hyps[precision] = got
            print(f"round {r + 1} {precision}: {speed[precision][-1]} sentences/s", flush=True)
    scores = {p: bleu_chrf(hyps[p], refs) for p in PRECISIONS}
    same = sum(a == b for a, b in zip(hyps["fp32"], hyps["bf16"]))
    same_onnx = sum(a == b for a, b in zip(hyps["fp32"], hyps["onnx"]))
    for p in PRECISIONS:
        print(f"{p}: BLEU {scores[p]['bleu']:.2f} chrF {scores[p]['chrf']:.2f}")
    result = {"benchmark": "translate_precision", "model": args.model, "source": args.source,
              "reference": args.reference, "sentences": len(sources), "beams": args.beams, "threads": args.threads,
              "batch_size": translator.batch_size, "scores": scores, "sentences_per_s": speed,
              "identical_lines": same, "identical_lines_onnx": same_onnx,
              "bleu_onnx_minus_fp32": round(scores["onnx"]["bleu"] - scores["fp32"]["bleu"], 2),
              "speedup_onnx": round(min(speed["onnx"]) / max(speed["fp32"]), 3),
              "bleu_bf16_minus_fp32": round(scores["bf16"]["bleu"] - scores["fp32"]["bleu"], 2),
              "speedup_bf16": round(min(speed["bf16"]) / max(speed["fp32"]), 3),
              "load_average_at_end": load_average(), "command": invocation("translate_precision")}
    path = write_result(out, result, started, args.allow_dirty, env)
    print(f"bf16 - fp32 BLEU {result['bleu_bf16_minus_fp32']:+.2f}, {same}/{len(sources)} identical lines; "
          f"written to {shown(path)}")


if __name__ == "__main__":
    main()

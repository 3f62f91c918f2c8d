"""Translation decoding speed, side by side in one process: TuneForge's `translate_ids` vs transformers'
`model.generate` vs CTranslate2, the same model folder, beam 4, the same sources (token ids of the first N
sentences of Multi30k test_2016_flickr.en), at batch 1 (one sentence per call) and batch 32; rounds alternate
which side goes first. Sentences/s = sentences / wall time of the decode from source ids to output ids (no
tokenizing or detokenising on any side).

Sides: `tuneforge` is the default path (`tuneforge translate`'s --decoder auto: the decoder step on ONNX Runtime for
an MBart/BART/Marian model in calls of at most 4 sentences, above that its --precision auto: bf16 decoder matrices
on a CPU with native bf16);
`tuneforge_bf16` and `tuneforge_fp32` the PyTorch step in each precision; `transformers` is `generate` as it comes (fp32);
`transformers_bf16` is `generate` on a bf16 copy of the model (the same precision as the default path on such a
CPU); `ctranslate2` its default compute type. The target is judged on the default path against `generate` as
it comes; the same-precision ratios are reported beside it.

Usage:  python -m benchmarks.bench_translate [--model runs/x/final | --preset mini] [--sentences 100] [--rounds 3]
        [--threads 2] [--new-tokens 20] [--no-batch32] [--no-ctranslate2] [--out /tmp/x.json]
`--model`: a trained encoder-decoder folder; each side decodes until EOS with the same length cap (1.5 × the
source + 10, as `tuneforge translate`), and the JSON says on how many sentences TuneForge's output equals
generate's. `--preset mini` (the default) builds an untrained model of that preset (a seq2seq tokenizer trained on
Multi30k train first, vocabulary 8,000) whose EOS logit is pushed down, so every side makes exactly --new-tokens
tokens per sentence: a pure speed check. Writes benchmarks/results/bench_translate.json by default.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.common import (RESULTS, SHARED_DATA, add_output_args, environment, guard_output, invocation,
                               load_average, shown, write_result)

MULTI30K = SHARED_DATA / "multi30k"
BEAMS = 4


def build_preset(preset: str, folder: Path, seed: int = 0):
    """An untrained model of `preset` with a Multi30k seq2seq tokenizer, saved to `folder` (CTranslate2 converts
    from there); EOS's logit bias -1e4 so no side ever ends early."""
    import torch

    from tuneforge.data.tokenizer_train import train_tokenizer
    from tuneforge.model.seq2seq import build_seq2seq

    texts = [line for side in ("en", "de") for line in
             (MULTI30K / f"train.{side}").read_text(encoding="utf-8").splitlines()]
    tokenizer = train_tokenizer(texts, kind="seq2seq", vocab_size=8000)
    torch.manual_seed(seed)
    # frozen, as Translator.load leaves a model: the lean decoder keeps its weight copies between calls
    model = build_seq2seq(preset, tokenizer, dropout=0.0).eval().requires_grad_(False)
    with torch.no_grad():
        model.final_logits_bias[0, model.config.eos_token_id] = -1e4
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model, tokenizer


def ctranslate2_translator(folder: Path, work: Path, threads: int):
    """(CTranslate2 Translator, note) for the folder; (None, why) when it is not installed or cannot convert it."""
    try:
        import ctranslate2
    except ImportError:
        return None, "not installed (pip install ctranslate2)"
    out = work / "ct2"
    try:
        ctranslate2.converters.TransformersConverter(str(folder)).convert(str(out), force=True)
    except Exception as exc:  # noqa: BLE001 - any converter failure is reported, not fatal
        return None, f"conversion failed: {str(exc).splitlines()[0][:200]}"
    return ctranslate2.Translator(str(out), device="cpu", inter_threads=1, intra_threads=threads), \
        f"ctranslate2 {ctranslate2.__version__}, fp32 (compute_type default)"


class Sides:
    """The decoders on one model and source set; each call decodes `batch` (a list of source id lists) and
    returns output ids (without start, EOS and padding)."""

    def __init__(self, model, tokenizer, ct2, fixed: int | None, precision: str, onnx):
        import copy

        import torch

        from tuneforge.generate.beam import BeamSettings

        self.model, self.tokenizer, self.ct2, self.fixed, self.onnx = model, tokenizer, ct2, fixed, onnx
        self.dtype = torch.bfloat16 if precision == "bf16" else None
        self.model_bf16 = copy.deepcopy(model).to(torch.bfloat16)
        self.pad = tokenizer.pad_token_id
        self.eos = model.generation_config.eos_token_id
        self.settings = BeamSettings(beams=BEAMS, max_new_tokens=fixed)

    def cap(self, batch) -> int:
        from tuneforge.generate.beam import decode_length

        return decode_length(self.settings, max(map(len, batch)), self.model.config.max_position_embeddings)

    def tuneforge(self, batch):
        from tuneforge.generate.beam import translate_ids

        from tuneforge.generate.translate import onnx_for

        return translate_ids(self.model, batch, self.settings, self.pad, batch_size=len(batch), dtype=self.dtype,
                             forward=onnx_for(self.onnx, len(batch)))  # as Translator.translate picks

    def tuneforge_bf16(self, batch):
        import torch

        from tuneforge.generate.beam import translate_ids

        return translate_ids(self.model, batch, self.settings, self.pad, batch_size=len(batch), dtype=torch.bfloat16)

    def tuneforge_fp32(self, batch):
        from tuneforge.generate.beam import translate_ids

        return translate_ids(self.model, batch, self.settings, self.pad, batch_size=len(batch))

    def transformers_bf16(self, batch):
        return self.transformers(batch, self.model_bf16)

    def transformers(self, batch, model=None):
        import torch

        width = max(map(len, batch))
        ids = torch.tensor([s + [self.pad] * (width - len(s)) for s in batch])
        with torch.inference_mode():
            out = (model or self.model).generate(ids, attention_mask=(ids != self.pad).long(), num_beams=BEAMS,
                                      length_penalty=1.0, early_stopping=True, do_sample=False,
                                      max_new_tokens=self.cap(batch))
        result = []
        for row in out[:, 1:].tolist():
            row = row[:row.index(self.eos)] if self.eos in row else row
            result.append([t for t in row if t != self.pad])
        return result

    def ctranslate2(self, batch):
        tokens = [self.tokenizer.convert_ids_to_tokens(s) for s in batch]
        cap = self.cap(batch)
        found = self.ct2.translate_batch(tokens, beam_size=BEAMS, length_penalty=1.0, max_batch_size=len(batch),
                                         max_decoding_length=cap, min_decoding_length=cap if self.fixed else 0)
        return [self.tokenizer.convert_tokens_to_ids(r.hypotheses[0]) for r in found]


def timed(fn, groups: list[list[list[int]]]) -> tuple[float, list[list[int]]]:
    """(sentences/s, outputs in order) of `fn` over the groups (each group one call)."""
    outputs = []
    start = time.perf_counter()
    for group in groups:
        outputs += fn(group)
    seconds = time.perf_counter() - start
    return round(sum(map(len, groups)) / seconds, 3), outputs


def groups_of(sources: list[list[int]], size: int) -> list[list[list[int]]]:
    """Batches of `size` sources; for size > 1 sorted by length first (as TuneForge and CTranslate2 batch), so
    generate gets the same low-padding batches."""
    if size == 1:
        return [[s] for s in sources]
    ordered = sorted(sources, key=len, reverse=True)
    return [ordered[i:i + size] for i in range(0, len(ordered), size)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    what = ap.add_mutually_exclusive_group()
    what.add_argument("--model", help="a trained encoder-decoder folder (e.g. runs/x/final)")
    what.add_argument("--preset", default="mini", help="an untrained preset model, fixed output length (default mini)")
    ap.add_argument("--sentences", type=int, default=100, help="first N sentences of test_2016_flickr.en")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--new-tokens", type=int, default=20, help="--preset only: tokens every output has")
    ap.add_argument("--no-batch32", action="store_true")
    ap.add_argument("--no-ctranslate2", action="store_true")
    ap.add_argument("--decoder", default="auto", help="the default side's decoder step (auto: as `tuneforge translate`)")
    ap.add_argument("--precision", default="auto", help="the default side's decoding precision (auto: as "
                    "`tuneforge translate`)")
    add_output_args(ap, RESULTS / "bench_translate.json")
    args = ap.parse_args()
    started = guard_output(args.out, args.allow_dirty)
    import torch

    torch.set_num_threads(args.threads)
    env = environment(args.threads, extra=("ctranslate2", "sacrebleu"))
    texts = (MULTI30K / "test_2016_flickr.en").read_text(encoding="utf-8").splitlines()[:args.sentences]
    with tempfile.TemporaryDirectory(prefix="bench-translate-") as tmp:
        work = Path(tmp)
        if args.model:
            from tuneforge.generate.translate import Translator

            translator = Translator.load(args.model)
            model, tokenizer, folder, fixed = translator.model, translator.tokenizer, Path(args.model), None
            described = f"{args.model} (outputs end at EOS; cap 1.5 × source + 10 tokens)"
        else:
            folder = work / "model"
            model, tokenizer = build_preset(args.preset, folder)
            fixed = args.new_tokens
            described = (f"untrained preset {args.preset} ({model.config.d_model} wide, {model.config.encoder_layers}"
                         f"+{model.config.decoder_layers} layers, vocabulary {model.config.vocab_size}), EOS "
                         f"suppressed: exactly {fixed} tokens per output")
        from tuneforge.generate.seq2seq_onnx import OnnxDecoder
        from tuneforge.generate.translate import Translator, decode_precision, use_onnx

        precision = decode_precision(args.precision)
        onnx = OnnxDecoder.for_model(model, args.threads) if use_onnx(model, args.decoder) else None
        sources = Translator(model, tokenizer).source_ids(texts)
        ct2, ct2_note = (None, "skipped (--no-ctranslate2)") if args.no_ctranslate2 else \
            ctranslate2_translator(folder, work, args.threads)
        sides = Sides(model, tokenizer, ct2, fixed, precision, onnx)
        names = ["tuneforge", "tuneforge_bf16", "tuneforge_fp32", "transformers", "transformers_bf16"] + \
            (["ctranslate2"] if ct2 else [])
        pairs = [("tuneforge_fp32", "transformers"), ("tuneforge", "tuneforge_fp32"),
                 ("tuneforge_bf16", "transformers_bf16")]
        sizes = [1] + ([] if args.no_batch32 else [32])
        for name in names:  # warm-up: first-call allocations and lazy imports on every side
            getattr(sides, name)(sources[:1])
        rounds = []
        for r in range(args.rounds):
            order = names if r % 2 == 0 else names[::-1]
            got = {}
            for size in sizes:
                groups = groups_of(sources, size)
                for name in order:
                    rate, outputs = timed(getattr(sides, name), groups)
                    got[f"batch{size}"] = got.get(f"batch{size}", {}) | {name: rate}
                    got.setdefault("_outputs", {})[(size, name)] = outputs
            outputs = got.pop("_outputs")
            same = {f"batch{size}:{a}={b}": sum(x == y for x, y in zip(outputs[(size, a)], outputs[(size, b)]))
                    for size in sizes for a, b in pairs}
            rounds.append({"round": r + 1, "order": order, "sentences_per_s": got,
                           "same_tokens_as_generate": same, "load_average": load_average()})
            print(f"round {r + 1}: " + "; ".join(
                f"batch {size}: " + ", ".join(f"{n} {got[f'batch{size}'][n]}" for n in names) for size in sizes),
                flush=True)
    ratios = {}
    for size in sizes:
        for mine, other in [("tuneforge", n) for n in names[1:]] + [("tuneforge_fp32", "transformers")]:
            values = [x["sentences_per_s"][f"batch{size}"][mine] / x["sentences_per_s"][f"batch{size}"][other]
                      for x in rounds]
            key = f"batch{size}_vs_{other}" if mine == "tuneforge" else f"batch{size}_{mine}_vs_{other}"
            ratios[key] = {"per_round": [round(v, 3) for v in values], "min": round(min(values), 3),
                           "median": round(statistics.median(values), 3)}
    judged = ratios["batch1_vs_transformers"]
    result = {"benchmark": "translate_speed", "model": described, "decoder": "onnxruntime" if onnx else "pytorch",
              "precision": precision, "beams": BEAMS,
              "length_penalty": 1.0, "sentences": len(sources), "threads": args.threads,
              "source_tokens_mean": round(statistics.mean(map(len, sources)), 2),
              "new_tokens": fixed or "until EOS", "decoder_step": _step_name(model), "ctranslate2": ct2_note,
              "rounds": rounds, "ratios": ratios,
              "target": {"what": "batch-1 beam-4 sentences/s, the default path "
                                 f"({'onnxruntime' if onnx else precision}) >= 2x model.generate as it comes (fp32, "
                                 "same model)", "bound": 2.0,
                         "judged_on": "min over rounds", "value": judged["min"], "met": judged["min"] >= 2.0},
              "load_average_at_end": load_average(), "command": invocation("bench_translate")}
    path = write_result(args.out, result, started, args.allow_dirty, env)
    print(f"batch-1 ratio vs generate: min {judged['min']}, median {judged['median']}; written to {shown(path)}")


def _step_name(model) -> str:
    from tuneforge.generate.seq2seq_forward import pick_seq2seq_forward

    return pick_seq2seq_forward(model).name


if __name__ == "__main__":
    main()

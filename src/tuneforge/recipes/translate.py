"""The `translate` verb: a plain-text file of source sentences (one per line) translated by an encoder-decoder into
a file with the same number of lines, in batches, with progress, written atomically.

Line i of the output is the translation of line i of the input, always: an empty (or whitespace-only) line gives an
empty line, a translation never contains a line break, and lines are split on "\\n" only (`str.splitlines` would
also split on U+2028 and friends and shift every later line). The Translator sorts the sentences by length before
batching, so a batch pads little, and puts them back in input order.
"""
from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

from tuneforge.errors import UserError


def check_options(beams: int, max_new_tokens: int | None, no_repeat_ngram: int, batch_size: int,
                  threads: int | None) -> None:
    """Bad flags, before anything is read or loaded."""
    if beams < 1:
        raise UserError(f"--beams {beams}: use 1 (greedy decoding) or more (4 is the usual beam search).")
    for flag, value, least in (("--max-length", max_new_tokens, 1), ("--no-repeat-ngram", no_repeat_ngram, 0),
                               ("--batch-size", batch_size, 1), ("--threads", threads, 1)):
        if value is not None and value < least:
            raise UserError(f"{flag} {value}: must be at least {least}.")


def read_lines(path: str) -> list[str]:
    """The file's lines (UTF-8, a BOM and "\\r" line ends tolerated), without their line breaks."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{path}: no such file; give a UTF-8 text file with one source sentence per line.")
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise UserError(f"{path}:{line}: not valid UTF-8 (byte 0x{raw[exc.start]:02x}). Re-save the file as UTF-8, "
                        "e.g. `iconv -f latin1 -t utf-8`.") from None
    text = text.removeprefix("\ufeff")
    if not text:
        return []
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def open_translator(model: str, threads: int | None = None, batch_size: int = 32, precision: str = "fp32",
                    decoder: str = "auto"):
    """The `Translator` for `model` (folder or alias) decoding in `precision` (fp32, bf16, auto) with `decoder`
    (auto, torch, onnx); UserError when it is not an encoder-decoder or an option is unknown."""
    import json

    from tuneforge.model.resolve import resolve_model
    from tuneforge.model.seq2seq import is_seq2seq
    from tuneforge.serve.load import load_translator

    from tuneforge.generate.translate import DECODERS, decode_precision

    decode_precision(precision)
    if decoder not in DECODERS:
        raise UserError(f"--decoder {decoder}: use one of {', '.join(DECODERS)}.")
    needs = ("`tuneforge translate` needs one (T5, BART, Marian, mT5, or a `tuneforge finetune --task translation` "
             "run's final/).")
    folder = resolve_model(model)
    if not Path(folder).is_dir():
        raise UserError(f"{model}: not a local model folder (hub models are not downloaded here); {needs}")
    if not is_seq2seq(folder):
        try:
            kind = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8")).get("model_type")
        except (OSError, ValueError):
            kind = None
        raise UserError(f"{model}: a {kind or 'unknown'} model is not an encoder-decoder; {needs}")
    return load_translator(folder, precision, decoder, threads=threads, batch_size=batch_size)


def one_line(text: str) -> str:
    """`text` with its line breaks (\\n, \\r) turned into single spaces, so it stays on its line of the output."""
    return re.sub(r"\s*[\r\n]+\s*", " ", text).strip() if "\n" in text or "\r" in text else text


def translate_lines(translator, lines: list[str], beams: int = 4, length_penalty: float = 1.0,
                    max_new_tokens: int | None = None, no_repeat_ngram: int = 0,
                    progress: Callable[[int, int], None] | None = None) -> list[str]:
    """One translation per line, in input order: empty lines stay empty, line breaks inside a translation become
    spaces. The Translator sorts the sentences by length and decodes them `batch_size` at a time;
    `progress(done, total)` follows it batch by batch (lines, the empty ones first)."""
    done = [0]

    def tick(n: int) -> None:
        done[0] += n
        if progress:
            progress(done[0], len(lines))

    hyps = translator.translate(lines, beams=beams, length_penalty=length_penalty, max_new_tokens=max_new_tokens,
                                no_repeat_ngram=no_repeat_ngram, progress=tick)
    if len(hyps) != len(lines):  # never write a shifted file
        raise RuntimeError(f"the translator returned {len(hyps)} translations for {len(lines)} lines")
    return [one_line(hyp) if line.strip() else "" for line, hyp in zip(lines, hyps)]


def engine(translator, sentences: int) -> str:
    """What decoded a call of `sentences` sentences: onnxruntime or pytorch-<precision> (`Translator`'s rule)."""
    from tuneforge.generate.translate import onnx_for

    if onnx_for(getattr(translator, "onnx", None), sentences) is not None:
        return "onnxruntime"
    return f"pytorch-{getattr(translator, 'precision', 'fp32')}"


def translate_file(translator, input_path: str, output: str, beams: int = 4, length_penalty: float = 1.0,
                   max_new_tokens: int | None = None, no_repeat_ngram: int = 0,
                   progress: Callable[[int, int], None] | None = None, lines: list[str] | None = None) -> dict:
    """Translate every line of `input_path` into `output` (written atomically, same line count). `lines`: the
    input already read (`read_lines`), so a bad file fails before the model loads."""
    from tuneforge.model.artifact import atomic_write_text

    lines = read_lines(input_path) if lines is None else lines
    start = time.perf_counter()
    hyps = translate_lines(translator, lines, beams, length_penalty, max_new_tokens, no_repeat_ngram, progress)
    seconds = time.perf_counter() - start
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, "".join(h + "\n" for h in hyps))
    translated = sum(1 for line in lines if line.strip())
    return {"lines": len(lines), "translated": translated, "empty": len(lines) - translated,
            "seconds": round(seconds, 2), "sentences_per_s": round(translated / seconds, 1) if seconds else None,
            "output": str(out)}

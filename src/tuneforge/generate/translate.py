"""`Translator`: what `tuneforge.load` returns for an encoder-decoder folder, and what the translation recipe, the
`translate` command and the server decode with. Texts in, detokenised texts out, in order; the decoding is
`beam.translate_ids`."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tuneforge.generate.beam import BeamSettings, translate_ids


class Translator:
    """An encoder-decoder and its tokenizer. `batch_size` sentences decode together (sorted by length);
    sources longer than `max_source_length` tokens (or the model's positions) are cut. `fast` uses the lean
    MBart/BART/Marian decoder step where the model qualifies. `normalize`: clean each text as training did
    (Unicode NFKC, whitespace collapsed: `data.sources.clean_text`), so a file translates as the run's report did.
    `precision` "bf16" decodes with bf16 copies of the decoder's matrices (the weights stay as loaded; layer norms
    and the residual stream stay fp32): see PRECISIONS. `onnx` (an `OnnxDecoder`) runs the decoder step on ONNX
    Runtime instead (fp32; `Translator.load` sets it up where it applies)."""

    def __init__(self, model, tokenizer, manifest=None, batch_size: int = 32, max_source_length: int = 256,
                 fast: bool = True, normalize: bool = False, precision: str = "fp32", onnx=None):
        self.model, self.tokenizer, self.manifest = model, tokenizer, manifest
        self.batch_size, self.max_source_length, self.fast = batch_size, max_source_length, fast
        self.normalize = normalize
        self.precision = precision
        self.onnx = onnx

    @property
    def dtype(self):
        import torch

        return torch.bfloat16 if self.precision == "bf16" else None

    @classmethod
    def load(cls, folder, threads: int | None = None, precision: str = "fp32", decoder: str = "torch") -> Translator:
        """The model folder (a translation run's final/, any encoder-decoder folder, alias or hub id) in eval mode;
        `threads` sets torch's intra-op threads (process-wide). A TuneForge folder's manifest gives the source
        length its model was trained with. `precision`: fp32, bf16, or auto (`decode_precision`). `decoder`:
        torch, onnx (the decoder step on ONNX Runtime, exported once and cached: `seq2seq_onnx`), or auto (onnx
        where the model has the lean step and onnxruntime is installed, on the CPU; else torch)."""
        import torch

        from tuneforge.model.manifest import MANIFEST, read_manifest
        from tuneforge.model.resolve import resolve_model
        from tuneforge.model.seq2seq import load_seq2seq, load_seq2seq_tokenizer

        if threads:
            torch.set_num_threads(threads)
        model, tokenizer = load_seq2seq(folder), load_seq2seq_tokenizer(folder)
        model.requires_grad_(False)  # inference only: frozen weights let the lean decoder keep its copies (packs.py)
        path = Path(resolve_model(folder))
        manifest = read_manifest(path) if (path / MANIFEST).is_file() else None
        max_source = manifest.max_length if manifest is not None else 256
        normalize = bool(getattr(manifest, "normalize", False)) if manifest is not None else False
        translator = cls(model, tokenizer, manifest, max_source_length=max_source, normalize=normalize,
                         precision=decode_precision(precision))
        if use_onnx(model, decoder):
            from tuneforge.generate.seq2seq_onnx import OnnxDecoder

            translator.onnx = OnnxDecoder.for_model(model, threads)
        return translator

    @property
    def pad_id(self) -> int:
        pad = getattr(self.tokenizer, "pad_token_id", None)
        if pad is None:
            pad = getattr(self.model.config, "pad_token_id", None)
        return pad if pad is not None else 0

    def source_limit(self) -> int:
        """Source tokens kept: max_source_length, and no more than the encoder's learned positions."""
        config = self.model.config
        positions = None if config.model_type in ("t5", "mt5", "umt5", "longt5") else \
            getattr(config, "max_position_embeddings", None)
        return min(self.max_source_length, positions) if positions else self.max_source_length

    def source_ids(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text with the tokenizer's own special tokens (a closing </s>), cut at source_limit."""
        if not texts:
            return []
        if self.normalize:
            from tuneforge.data.sources import clean_text

            texts = [clean_text(t) for t in texts]
        return [list(ids) for ids in self.tokenizer(list(texts), add_special_tokens=True, truncation=True,
                                                    max_length=self.source_limit())["input_ids"]]

    def translate(self, texts: list[str], beams: int = 4, length_penalty: float = 1.0,
                  max_new_tokens: int | None = None, no_repeat_ngram: int = 0,
                  progress: Callable[[int], None] | None = None) -> list[str]:
        """The translation of each text, in order (an empty or whitespace-only text gives "" without decoding).
        Settings are BeamSettings' (UserError naming the option when out of range); `progress(n)` is called as
        each batch of n sentences finishes."""
        settings = BeamSettings(beams=beams, length_penalty=length_penalty, max_new_tokens=max_new_tokens,
                                no_repeat_ngram=no_repeat_ngram)
        todo = [i for i, text in enumerate(texts) if text.strip()]
        out = [""] * len(texts)
        if progress and len(todo) < len(texts):
            progress(len(texts) - len(todo))
        if not todo:
            return out
        ids = translate_ids(self.model, self.source_ids([texts[i] for i in todo]), settings, self.pad_id,
                            batch_size=self.batch_size, fast=self.fast, progress=progress, dtype=self.dtype,
                            forward=onnx_for(self.onnx, len(todo)))
        for i, hyp in zip(todo, ids):
            out[i] = self.tokenizer.decode(hyp, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        return out


PRECISIONS = ("auto", "fp32", "bf16")


def decode_precision(precision: str) -> str:
    """fp32 or bf16 for `precision` (auto: bf16 on a CPU that computes it natively, avx512_bf16/AMX, as training's
    `runtime.precision` auto; fp32 elsewhere)."""
    from tuneforge.errors import UserError

    if precision not in PRECISIONS:
        raise UserError(f"precision '{precision}': an encoder-decoder decodes in {', '.join(PRECISIONS)}.")
    if precision != "auto":
        return precision
    from tuneforge.hardware import cpu_has_native_bf16

    return "bf16" if cpu_has_native_bf16() else "fp32"


DECODERS = ("auto", "torch", "onnx")
# The ONNX step wins at a few rows (one sentence, beam 4: 4.3x `generate`; bench_translate.json)
# and loses at batch 32 on a trained model (55 vs 79 fp32 and 133 bf16 sentences/s: the past keys/values go in and
# out of the session every step, and sentences leaving the batch re-copy them), so only small calls use it.
ONNX_MAX_SENTENCES = 4


def onnx_for(onnx, sentences: int):
    """The ONNX step for a call of `sentences` sentences, or None (PyTorch) above ONNX_MAX_SENTENCES."""
    return onnx if onnx is not None and sentences <= ONNX_MAX_SENTENCES else None


def use_onnx(model, decoder: str) -> bool:
    """Whether `decoder` (auto | torch | onnx) means the ONNX Runtime step for this model; UserError for onnx where
    it cannot run (not an MBart/BART/Marian with plain linear layers, onnxruntime missing, a GPU model)."""
    import importlib.util

    from tuneforge.errors import UserError
    from tuneforge.generate.seq2seq_forward import LeanDecoder

    if decoder not in DECODERS:
        raise UserError(f"decoder '{decoder}': use one of {', '.join(DECODERS)}.")
    if decoder == "torch":
        return False
    why = None
    if not LeanDecoder.supports(model):
        why = f"a {model.config.model_type} model (the ONNX step covers MBart, BART and Marian)"
    elif importlib.util.find_spec("onnxruntime") is None:
        why = "onnxruntime is not installed (pip install onnxruntime)"
    elif next(model.parameters()).device.type != "cpu":
        why = "the model is on a GPU"
    if why and decoder == "onnx":
        raise UserError(f"decoder 'onnx': {why}; use --decoder torch.")
    return why is None

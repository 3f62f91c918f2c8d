"""`tuneforge.load`: open a model folder with the backend it needs (PyTorch `Predictor`, `OnnxPredictor` for a
`tuneforge export` folder, a `TextGenerator` for a causal LM or a LoRA adapter of one, or a `Translator` for an
encoder-decoder). Here rather than on `Predictor`, so the PyTorch predictor knows nothing of ONNX or generation."""
from __future__ import annotations

from pathlib import Path

import torch

from tuneforge.errors import UserError
from tuneforge.export.runtime import ONNX_FILE
from tuneforge.serve.onnx_backend import OnnxPredictor
from tuneforge.serve.predictor import Predictor, embedding_prefixes, int8_linears

PRECISIONS = ("fp32", "bf16", "int8")


def load(path: str, precision: str | None = None, **kwargs) -> Predictor:
    """A PyTorch predictor for a model folder (a TuneForge run's final/, any HF model folder, or an alias), or the
    ONNX Runtime one when the folder holds an exported model.onnx, or a `TextGenerator` (`load_text_generator`)
    when it is a causal LM (GPT-2, GPT-Neo, Llama, Qwen, smollm2-135m, an SFT run) or a LoRA adapter of one, or a
    `Translator` (`load_translator`) when it is an encoder-decoder (T5, BART, Marian, a translation run's final/).

    precision None is the model kind's default: auto for an encoder-decoder (bf16 decoding on CPUs with native
    bf16, `generate.translate.decode_precision`), fp32 for the rest.
    precision="bf16" casts the weights once (not autocast, which re-casts them on every call): 1.6× faster
    at batch 1 on CPUs with native bf16 (avx512_bf16/AMX), same SST-2 dev labels, probabilities within 0.03.
    precision="int8" quantizes the linear layers (`int8_linears`; CPU only). `threads` sets torch's
    intra-op threads (process-wide) or the ONNX session's; `spinning` (call | always | off) is for ONNX sessions
    only. Other keywords (batch_size, max_length, normalize, prefixes) go to the predictor; prefixes
    default to the folder's `embedding.prefixes` (`embedding_prefixes`)."""
    from tuneforge.model.build import load_for_inference
    from tuneforge.model.manifest import read_manifest
    from tuneforge.model.resolve import resolve_model

    if precision not in (*PRECISIONS, "auto", None):
        raise UserError(f"precision '{precision}': use one of {', '.join(PRECISIONS)}.")
    if _adapter(path):
        return load_text_generator(path, precision or "fp32", **kwargs)
    folder = resolve_model(path)
    if _seq2seq(folder):  # before the causal check: a config without architectures may name both (mbart)
        return load_translator(folder, precision or "auto", **kwargs)
    precision = precision or "fp32"
    if precision == "auto":
        raise UserError(f"precision 'auto' picks an encoder-decoder's decoding precision; {path} is not one: use "
                        f"one of {', '.join(PRECISIONS)}.")
    if _causal(folder):
        return load_text_generator(path, precision, **kwargs)
    if (Path(folder) / ONNX_FILE).is_file():
        if precision != "fp32":
            raise UserError(f"{folder}: an ONNX export runs at the precision it was exported with; drop "
                            "--precision (or export with --quantize int8).")
        return OnnxPredictor.load(folder, **kwargs)
    if kwargs.pop("spinning", None) not in (None, False):
        raise UserError(f"{folder}: spinning is an ONNX Runtime setting and this is a PyTorch model folder; "
                        "drop spinning (--spinning) or load a `tuneforge export` folder.")
    threads = kwargs.pop("threads", None)
    if threads:
        torch.set_num_threads(threads)  # process-wide, as torch's intra-op pool is
    manifest = read_manifest(folder)
    model, tokenizer = load_for_inference(path)
    if precision == "bf16":
        model = model.to(torch.bfloat16)
    elif precision == "int8":  # load_for_inference keeps the model on the CPU, where these kernels run
        model = int8_linears(model)
    kwargs.setdefault("max_length", manifest.max_length)
    kwargs.setdefault("prefixes", embedding_prefixes(manifest))  # e5: "query: " / "passage: " before embedded texts
    return Predictor(model, tokenizer, **kwargs)


def _causal(folder) -> bool:
    from tuneforge.model.causal import is_causal_lm

    return Path(folder).is_dir() and is_causal_lm(folder)


def _seq2seq(folder) -> bool:
    from tuneforge.model.seq2seq import is_seq2seq

    return Path(folder).is_dir() and is_seq2seq(folder)


TRANSLATOR_OPTIONS = ("threads", "batch_size", "max_length")


def load_translator(path: str, precision: str = "auto", decoder: str = "auto", **kwargs):
    """A `Translator` (`generate.translate`) for an encoder-decoder folder: `.translate(texts, beams=4,
    length_penalty=1.0, max_new_tokens=None, no_repeat_ngram=0)`. precision: fp32, bf16 (bf16 copies of the
    decoder's matrices) or auto (bf16 on CPUs with native bf16); decoder: auto, torch or onnx (the decoder step on
    ONNX Runtime; auto: where it applies, `generate.translate.use_onnx`). Keywords: threads (torch's intra-op threads,
    process-wide), batch_size (sentences decoded together), max_length (source tokens; longer sources are cut);
    spinning=None is accepted (the server passes it) and anything else refused."""
    from tuneforge.generate.translate import Translator, decode_precision

    decode_precision(precision)  # an unknown one (int8) is a one-line error before the model loads
    if kwargs.pop("spinning", None) not in (None, False):
        raise UserError(f"{path}: spinning is an ONNX Runtime setting and this is an encoder-decoder; drop "
                        "spinning (--spinning).")
    unknown = sorted(set(kwargs) - set(TRANSLATOR_OPTIONS))
    if unknown:
        raise UserError(f"{path}: an encoder-decoder takes the options {', '.join(TRANSLATOR_OPTIONS)}, not "
                        f"{', '.join(unknown)}.")
    for name in TRANSLATOR_OPTIONS:
        if kwargs.get(name) is not None and kwargs[name] < 1:
            raise UserError(f"{name}={kwargs[name]}: must be at least 1.")
    translator = Translator.load(path, threads=kwargs.get("threads"), precision=precision, decoder=decoder)
    if kwargs.get("batch_size"):
        translator.batch_size = kwargs["batch_size"]
    if kwargs.get("max_length"):
        translator.max_source_length = kwargs["max_length"]
    return translator


GENERATOR_OPTIONS = ("threads", "max_batch", "fast")


def load_text_generator(path: str, precision: str = "fp32", **kwargs):
    """A `TextGenerator` for a causal LM (alias, folder) or a LoRA adapter folder (its base model loaded and the
    adapter merged in, so decoding runs plain linear layers). precision fp32 | bf16; keywords: threads, max_batch,
    fast (the fused Llama-family forward, default on), and default generation settings (max_new_tokens,
    temperature, top_p, top_k, repetition_penalty, seed, stop)."""
    from tuneforge.generate.api import TextGenerator
    from tuneforge.generate.fused_llama import share_weights
    from tuneforge.generate.settings import make_settings
    from tuneforge.model.causal import load_causal_lm, load_causal_tokenizer

    if precision not in ("fp32", "bf16"):
        raise UserError(f"precision '{precision}': a causal LM runs in fp32 or bf16.")
    options = {k: kwargs.pop(k) for k in GENERATOR_OPTIONS if k in kwargs}
    settings = make_settings(**kwargs)
    threads = options.pop("threads", None)
    if threads:
        torch.set_num_threads(threads)  # process-wide, as torch's intra-op pool is
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    if _adapter(path):
        model, tokenizer = _merged_adapter(path, dtype), load_causal_tokenizer(path)
    else:
        model, tokenizer = load_causal_lm(path, dtype=dtype), load_causal_tokenizer(path)
    model.requires_grad_(False)  # inference only: frozen weights let engines reuse their fused copies (packs.py)
    if options.get("fast", True):
        share_weights(model)  # this process owns the model: engines built on it reuse the fused weights
    return TextGenerator(model, tokenizer, settings, **options)


def _adapter(folder) -> bool:
    from tuneforge.model.lora import is_adapter_folder

    return Path(folder).is_dir() and is_adapter_folder(folder)


def _merged_adapter(folder, dtype):
    import json

    from tuneforge.model.causal import load_causal_lm
    from tuneforge.model.lora import load_adapter, merge_lora

    config = json.loads((Path(folder) / "adapter_config.json").read_text(encoding="utf-8"))
    base = config.get("base_model_name_or_path")
    if not base:
        raise UserError(f"{folder}: adapter_config.json names no base_model_name_or_path; add the base model's alias "
                        "or folder there.")
    return merge_lora(load_adapter(load_causal_lm(base, dtype=dtype), folder)).eval()

"""Convert a packaged GGUF causal LM into a plain Hugging Face safetensors folder (loads without `gguf`).

transformers de-quantizes GGUF on every load (~30-60 s for SmolLM2-135M) and refuses `save_pretrained` while its
GGUF quantizer is attached, so the weights are copied into a model rebuilt from the config without
`quantization_config`, saved once, and checked against the GGUF-loaded logits."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

CHECK_PROMPT = "The capital of France is"
MAX_LOGIT_DIFF = 1e-4  # same fp32 weights in both models: only summation order may differ


def convert_gguf(source_file: Path, dest: Path, say: Callable[[str], None]) -> dict:
    """Write a safetensors model + tokenizer + generation config into `dest`; returns metadata for the record."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # model.build.quiet_transformers, inlined: build imports resolve, which imports this module
    transformers.logging.set_verbosity_error()
    folder, name = str(Path(source_file).parent), Path(source_file).name
    say(f"  reading and de-quantizing {name} (transformers + gguf)")
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()
    plain = _plain_copy(gguf_model)
    # GGUF carries no tokenizer length limit (transformers writes 1e30); the model's context is the real one
    tokenizer.model_max_length = plain.config.max_position_embeddings
    say(f"  writing safetensors into {dest}")
    plain.save_pretrained(dest, safe_serialization=True)
    tokenizer.save_pretrained(dest)
    diff = _check_reload(gguf_model, tokenizer, dest)
    say(f"  reloaded copy matches the GGUF model (max |logit diff| {diff:.1e})")
    return {"architecture": type(plain).__name__, "parameters": sum(p.numel() for p in plain.parameters()),
            "max_logit_diff": diff, "transformers_version": _version("transformers"),
            "gguf_version": _version("gguf")}


def _plain_copy(gguf_model):
    """The same weights in a model without the GGUF quantizer (so it can be saved)."""
    import copy

    from transformers import AutoModelForCausalLM

    config = copy.deepcopy(gguf_model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config._name_or_path = ""
    plain = AutoModelForCausalLM.from_config(config, dtype=gguf_model.dtype)
    missing, unexpected = plain.load_state_dict(gguf_model.state_dict(), strict=False)
    # a tied lm_head may be absent from the state dict; anything else missing means a broken copy
    missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise RuntimeError(f"GGUF conversion: missing {missing[:5]}, unexpected {unexpected[:5]}")
    plain.tie_weights()
    plain.generation_config = copy.deepcopy(gguf_model.generation_config)
    return plain.eval()


def _check_reload(gguf_model, tokenizer, dest: Path) -> float:
    """Max |logit difference| between the GGUF-loaded model and the saved folder reloaded (one short prompt)."""
    import torch
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(dest, dtype=torch.float32).eval()
    ids = tokenizer(CHECK_PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        diff = (gguf_model(ids).logits - reloaded(ids).logits).abs().max().item()
    if not diff <= MAX_LOGIT_DIFF:
        raise RuntimeError(f"GGUF conversion: reloaded model differs (max |logit diff| {diff:.3g})")
    return diff


def _version(package: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"

"""GPT-style causal language models: Llama-architecture size presets (as data), build from scratch, load a
pretrained folder or alias (`smollm2-135m`), its tokenizer, and tell a causal-LM folder from an encoder folder."""
from __future__ import annotations

from pathlib import Path

from tuneforge.errors import UserError
from tuneforge.model.resolve import read_model_config

# SmolLM2's architecture (Llama: pre-RMSNorm, RoPE, SwiGLU, tied input/output embeddings) at five sizes. Heads of
# 64 dims (32 for tiny), SwiGLU width ≈ 8/3 × hidden rounded up to a multiple of 32 (same FLOPs as a 4× GELU MLP).
# `base` is SmolLM2-135M's shape (30 layers of 576, grouped-query attention 9:3) so it can continue from it.
CAUSAL_PRESETS: dict[str, dict[str, int | float]] = {
    "tiny": {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 2, "num_key_value_heads": 2,
             "intermediate_size": 192, "rope_theta": 10000.0},
    "mini": {"num_hidden_layers": 4, "hidden_size": 256, "num_attention_heads": 4, "num_key_value_heads": 4,
             "intermediate_size": 704, "rope_theta": 10000.0},
    "small": {"num_hidden_layers": 6, "hidden_size": 512, "num_attention_heads": 8, "num_key_value_heads": 8,
              "intermediate_size": 1376, "rope_theta": 10000.0},
    "medium": {"num_hidden_layers": 12, "hidden_size": 768, "num_attention_heads": 12, "num_key_value_heads": 12,
               "intermediate_size": 2048, "rope_theta": 10000.0},
    "base": {"num_hidden_layers": 30, "hidden_size": 576, "num_attention_heads": 9, "num_key_value_heads": 3,
             "intermediate_size": 1536, "rope_theta": 100000.0},
}

# Encoders whose configs can name an LM head class (e.g. BertLMHeadModel) without being usable decoders.
_ENCODER_TYPES = {"bert", "roberta", "roberta-prelayernorm", "xlm-roberta", "distilbert", "electra", "deberta",
                  "deberta-v2", "albert", "mpnet", "camembert", "modernbert"}


def causal_config(preset: str, tokenizer, max_position: int = 1024, dropout: float = 0.0):
    """The LlamaConfig of a from-scratch model; token ids come from the tokenizer (EOS falls back to [SEP])."""
    from transformers import LlamaConfig

    if preset not in CAUSAL_PRESETS:
        raise UserError(f"model.preset: unknown causal preset '{preset}'. Choose one of {', '.join(CAUSAL_PRESETS)}.")
    shape = dict(CAUSAL_PRESETS[preset])
    rope_theta = shape.pop("rope_theta")
    eos = _first_id(tokenizer, "eos_token_id", "sep_token_id")
    bos = _first_id(tokenizer, "bos_token_id", "cls_token_id")
    pad = _first_id(tokenizer, "pad_token_id") if _first_id(tokenizer, "pad_token_id") is not None else eos
    return LlamaConfig(vocab_size=len(tokenizer), max_position_embeddings=max_position, attention_dropout=dropout,
                       tie_word_embeddings=True, rms_norm_eps=1e-5, hidden_act="silu", pad_token_id=pad,
                       bos_token_id=bos, eos_token_id=eos,
                       rope_parameters={"rope_type": "default", "rope_theta": rope_theta}, **shape)


def _first_id(tokenizer, *attrs: str) -> int | None:
    for attr in attrs:
        value = getattr(tokenizer, attr, None)
        if value is not None:
            return value
    return None


def build_causal_lm(preset: str, tokenizer, max_position: int = 1024, dropout: float = 0.0):
    """A randomly initialised LlamaForCausalLM of a preset size (seed first for a reproducible init)."""
    from transformers import LlamaForCausalLM

    return LlamaForCausalLM(causal_config(preset, tokenizer, max_position, dropout))


def is_causal_lm(folder) -> bool:
    """True when `folder`'s config.json names a causal-LM (decoder) architecture; no weights are read."""
    cfg = read_model_config(Path(folder))
    if not cfg:
        return False
    model_type = cfg.get("model_type", "")
    if model_type in _ENCODER_TYPES and not cfg.get("is_decoder"):
        return False
    archs = cfg.get("architectures") or []
    if archs:
        return any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs)
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES


def _not_causal(name: str, folder: Path) -> UserError:
    cfg = read_model_config(folder) or {}
    kind = ", ".join(cfg.get("architectures") or []) or cfg.get("model_type") or "unknown"
    return UserError(f"{folder}: not a causal language model ({kind}); model '{name}' must be a GPT-style folder "
                     "(GPT-2, GPT-Neo, Llama, Qwen, a `tuneforge pretrain --objective clm` run) or the alias "
                     "smollm2-135m. Encoders (BERT, MiniLM) go to `--task classification`.")


def load_causal_lm(name: str, dtype=None):
    """A pretrained causal LM (alias, folder or hub id), in eval mode, fp32 by default (bf16 is emulated on
    CPUs without native bf16)."""
    from transformers import AutoModelForCausalLM

    from tuneforge.model.build import load_pretrained

    return load_pretrained(name, AutoModelForCausalLM, "a causal LM", is_causal_lm, _not_causal, dtype)


def load_causal_tokenizer(name: str):
    """The tokenizer of a causal LM; pad = eos when it has no pad token (GPT-2). Padding side is left to the
    caller (generation pads left, training right)."""
    from tuneforge.model.build import load_tokenizer

    return load_tokenizer(name, pad_with_eos=True)

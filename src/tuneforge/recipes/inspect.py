"""`tuneforge inspect`: the block tree, parameters per block and FLOPs per token of a model or a size preset
(MLM presets by name, GPT-style causal presets as gpt-<name>)."""
from __future__ import annotations

from tuneforge.model.causal import CAUSAL_PRESETS, is_causal_lm
from tuneforge.model.inspect import render_tree
from tuneforge.model.mlm import PRESETS, preset_config


class _Vocab:
    """Stands in for a tokenizer when a preset is inspected: only its size and pad id matter."""

    def __init__(self, size: int):
        self.size, self.pad_token_id = size, 0

    def __len__(self) -> int:
        return self.size


def describe(name: str, seq_len: int = 128, vocab_size: int = 8000):
    if name.startswith("gpt-") and name[4:] in CAUSAL_PRESETS:  # GPT-style presets: gpt-tiny … gpt-base
        from tuneforge.model.causal import build_causal_lm

        model = build_causal_lm(name[4:], _Vocab(vocab_size))
        return render_tree(model, f"causal preset {name[4:]} (Llama architecture, vocabulary {vocab_size})", seq_len)
    if name in PRESETS:
        from transformers import BertForMaskedLM

        model = BertForMaskedLM(preset_config(name, _Vocab(vocab_size)))
        return render_tree(model, f"preset {name} (vocabulary {vocab_size})", seq_len)
    from transformers import (
        AutoConfig,
        AutoModel,
        AutoModelForCausalLM,
        AutoModelForMaskedLM,
        AutoModelForSequenceClassification,
    )

    from tuneforge.errors import UserError
    from tuneforge.model.build import quiet_transformers
    from tuneforge.model.resolve import resolve_model

    quiet_transformers()
    path = resolve_model(name)
    try:
        archs = AutoConfig.from_pretrained(path).architectures or []
        if any(a.endswith("ForSequenceClassification") for a in archs):
            model = AutoModelForSequenceClassification.from_pretrained(path)
        elif any(a.endswith("ForMaskedLM") for a in archs):
            model = AutoModelForMaskedLM.from_pretrained(path)
        elif is_causal_lm(path):
            model = AutoModelForCausalLM.from_pretrained(path)
        else:
            model = AutoModel.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"model '{name}': cannot load ({str(exc).splitlines()[0]}).") from None
    return render_tree(model, name, seq_len)

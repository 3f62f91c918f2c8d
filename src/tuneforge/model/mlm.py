"""Masked-LM models: size presets (as data), build from scratch or load to continue, and a sparse MLM head.

The sparse head runs the vocabulary projection only on the ~15% masked positions instead of all of them,
which removes most of the head's cost (for `mini` with an 8k vocabulary the head is ~40% of the FLOPs).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from tuneforge.errors import UserError
from tuneforge.model.documents import restarted_positions, segment_mask
from tuneforge.model.resolve import resolve_model

# Google's BERT miniatures (Turc et al., 2019) and BERT-base; heads of 64 dims, FFN 4× hidden.
PRESETS: dict[str, dict[str, int]] = {
    "tiny": {"num_hidden_layers": 2, "hidden_size": 128, "num_attention_heads": 2, "intermediate_size": 512},
    "mini": {"num_hidden_layers": 4, "hidden_size": 256, "num_attention_heads": 4, "intermediate_size": 1024},
    "small": {"num_hidden_layers": 4, "hidden_size": 512, "num_attention_heads": 8, "intermediate_size": 2048},
    "medium": {"num_hidden_layers": 8, "hidden_size": 512, "num_attention_heads": 8, "intermediate_size": 2048},
    "base": {"num_hidden_layers": 12, "hidden_size": 768, "num_attention_heads": 12, "intermediate_size": 3072},
}


def preset_config(preset: str, tokenizer, max_position: int = 512, dropout: float = 0.1, norm: str = "post"):
    """The config of a from-scratch model: BERT (post-LayerNorm) or RoBERTa-PreLayerNorm (`norm="pre"`)."""
    if preset not in PRESETS:
        raise UserError(f"model.preset: unknown preset '{preset}'. Choose one of {', '.join(PRESETS)}.")
    pad = tokenizer.pad_token_id or 0
    common = dict(vocab_size=len(tokenizer), pad_token_id=pad, hidden_dropout_prob=dropout,
                  attention_probs_dropout_prob=dropout, **PRESETS[preset])
    if norm == "pre":
        from transformers import RobertaPreLayerNormConfig

        # RoBERTa numbers positions from pad_token_id + 1, so it needs pad + 1 more position embeddings.
        return RobertaPreLayerNormConfig(max_position_embeddings=max_position + pad + 1, type_vocab_size=2,
                                         bos_token_id=getattr(tokenizer, "cls_token_id", None),
                                         eos_token_id=getattr(tokenizer, "sep_token_id", None), **common)
    from transformers import BertConfig

    return BertConfig(max_position_embeddings=max_position, **common)


def build_mlm(preset: str, tokenizer, max_position: int = 512, dropout: float = 0.1, norm: str = "post"):
    """A randomly initialised masked-LM of a preset size (seed first for a reproducible init)."""
    from transformers import AutoModelForMaskedLM

    return AutoModelForMaskedLM.from_config(preset_config(preset, tokenizer, max_position, dropout, norm))


def load_mlm(name: str):
    """A pretrained encoder with its MLM head; a fresh head when the checkpoint has none (e.g. MiniLM)."""
    from transformers import AutoModelForMaskedLM

    from tuneforge.model.build import quiet_transformers

    quiet_transformers()
    try:
        return AutoModelForMaskedLM.from_pretrained(resolve_model(name))
    except (OSError, ValueError) as exc:
        raise UserError(f"model '{name}': cannot load as a masked-LM ({str(exc).splitlines()[0]}).") from None


def _head(model):
    """The MLM head module, for the families whose head maps hidden states straight to vocabulary logits."""
    for attr in ("cls", "lm_head"):  # BERT-like, RoBERTa-like
        if isinstance(getattr(model, attr, None), torch.nn.Module):
            return getattr(model, attr)
    return None


def document_inputs(model, segment_ids: torch.Tensor) -> dict[str, torch.Tensor]:
    """Attention kept inside each packed text, and positions restarted per text, from (B, T) segment ids.

    Segment 0 starts with [CLS] at position 0; every later text starts at position 1, as if a [CLS] stood before
    it, which is what a fine-tuned model sees. Without this a short text attends to ~10 unrelated neighbours in
    its 128-token block. Returns `attention_mask` (B, 1, T, T) and `position_ids` (B, T) for the base model.
    """
    same = segment_mask(model, segment_ids, causal=False)
    positions = restarted_positions(segment_ids) + (segment_ids > 0).long()
    embeddings = getattr(getattr(model, model.base_model_prefix), "embeddings", None)
    if getattr(embeddings, "padding_idx", None) is not None:  # RoBERTa family numbers positions from pad + 1
        positions = positions + embeddings.padding_idx + 1
    return {"attention_mask": same, "position_ids": positions}


class SparseMLM(torch.nn.Module):
    """Wraps a `*ForMaskedLM`: encoder on all tokens, MLM head only where labels != -100.

    forward → (mean loss over masked tokens, their logits (n, V), their labels (n,)). With `segment_ids` the
    packed texts of a block attend only within themselves (`document_inputs`). Accelerate prepares
    this wrapper, so DDP sees one forward; `self.model` is what gets saved.
    """

    def __init__(self, model):
        super().__init__()
        self.model = model  # the head is looked up per call, not registered twice (one state-dict key per tensor)

    def forward(self, input_ids, attention_mask, labels, segment_ids=None):
        selected = labels != -100
        head = _head(self.model)
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if segment_ids is not None:  # packed texts see only themselves
            inputs.update(document_inputs(self.model, segment_ids))
        if head is None:  # other families: full head, then keep the masked rows
            logits = self.model(**inputs).logits[selected]
        else:
            base = getattr(self.model, self.model.base_model_prefix)
            hidden = base(**inputs).last_hidden_state
            logits = head(hidden[selected])
        targets = labels[selected]
        if targets.numel() == 0:
            return logits.sum() * 0.0, logits, targets
        return F.cross_entropy(logits.float(), targets), logits, targets

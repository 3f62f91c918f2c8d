"""Encoder-decoder (sequence-to-sequence) models for translation: size presets as data, a from-scratch model built
from a preset and its tokenizer, pretrained folders loaded (T5, mT5, BART, MBart, Marian, ...), and an
encoder-decoder folder told apart from an encoder or a causal LM.

The from-scratch architecture is MBart's: a pre-LayerNorm transformer (LayerNorm before each sublayer, one more
after the embeddings and at the end of each stack), learned positions, GELU, one embedding table shared by the
encoder, the decoder and the LM head, embeddings scaled by √d_model. Pre-norm because it trains stably at the high
learning rates a short CPU budget needs (post-norm transformers need a long warm-up); MBart's class because it is
stock transformers (`AutoModelForSeq2SeqLM` loads it, SDPA or eager attention) and CTranslate2 converts it. Decoding starts
from EOS, as in BART and Marian, which is also what MBart's own label shift gives for labels that end in EOS.

Presets (d_model, encoder layers, decoder layers, heads, feed-forward width); heads of 64 dims except `tiny`'s:

- `tiny` (64, 2, 2, 2, 256): tests and smoke runs only.
- `mini` (256, 3, 3, 4, 1024), 7.7M parameters at vocab 8,000: about 30k sentence pairs (Multi30k) in an hour on
  2 CPU cores, ~20+ epochs. Small data overfits a bigger model before it converges, so this is the preset for
  up to ~100k pairs on a CPU.
- `small` (384, 4, 4, 6, 1536), 19.8M parameters: ~100k-1M pairs, or a longer budget; half mini's speed.
- `base` (512, 6, 6, 8, 2048), 48.5M parameters: the "transformer base" of Vaswani et al. (2017), for millions of
  pairs on a GPU.

Measured training speed: one train step (forward, label-smoothed loss, backward, clipping, fused AdamW) on batches
of ~4,000 tokens (133 pairs of 15 + 15 tokens), vocab 8,000, one thread, tokens per CPU-second (the 2 cores were
shared with a benchmark, so wall-clock times were noisy; CPU time is the stable figure); AMD EPYC with avx512_bf16:

| preset | bf16, eager | bf16, sdpa | fp32, eager | fp32, sdpa | training FLOPs/token |
|---|---|---|---|---|---|
| mini | 3,800-4,000 | 2,500-3,200 | 2,300-2,400 | 2,300 | 23M |
| small | 1,700-2,000 | 1,300 | 880-920 | 950 | 59M |
| base | 810 | | 400 | | 145M |

Two threads give roughly 1.7-1.9× these (not measured: the cores were busy). For Multi30k (0.9M source + target
tokens per epoch), mini in bf16 is ~6,500-7,000 tokens/s → ~25 epochs in 60 minutes before evaluation time; small
~12. Attention is "eager" on the model `build_seq2seq` returns: at sentence lengths torch's CPU SDPA (the flash
kernel) spends ~85 ms per call in its backward for a mini layer (batch 133 × 4 heads × 15 positions), ten times its
forward; eager attention (two matmuls and a softmax) trains mini 1.3-1.5× faster in bf16 (the same in fp32; also at
30 and 60 tokens per side). The saved config.json does not record it, so a loaded folder runs transformers' default.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from tuneforge.errors import UserError
from tuneforge.model.resolve import read_model_config


class Seq2SeqShape(NamedTuple):
    d_model: int
    encoder_layers: int
    decoder_layers: int
    heads: int
    ffn: int


SEQ2SEQ_PRESETS: dict[str, Seq2SeqShape] = {
    "tiny": Seq2SeqShape(64, 2, 2, 2, 256),
    "mini": Seq2SeqShape(256, 3, 3, 4, 1024),
    "small": Seq2SeqShape(384, 4, 4, 6, 1536),
    "base": Seq2SeqShape(512, 6, 6, 8, 2048),
}


def _first_id(tokenizer, *attrs: str) -> int | None:
    for attr in attrs:
        value = getattr(tokenizer, attr, None)
        if value is not None:
            return value
    return None


def _token_ids(tokenizer) -> tuple[int, int, int]:
    """(pad, eos, bos) of a tokenizer; EOS falls back to [SEP], BOS to [CLS] then EOS, pad to EOS."""
    eos = _first_id(tokenizer, "eos_token_id", "sep_token_id")
    if eos is None:
        raise UserError("tokenizer: it has no end-of-sentence token (eos_token or sep_token), which an "
                        "encoder-decoder needs to end its outputs; use a tokenizer trained with "
                        "`tuneforge tokenizer train --type seq2seq`.")
    bos = _first_id(tokenizer, "bos_token_id", "cls_token_id")
    pad = _first_id(tokenizer, "pad_token_id")
    return (eos if pad is None else pad), eos, (eos if bos is None else bos)


def seq2seq_config(preset: str, tokenizer, max_position: int = 256, dropout: float = 0.1):
    """The MBartConfig of a from-scratch model of a preset size. Token ids come from the tokenizer; decoding starts
    from EOS (`decoder_start_token_id`), nothing is forced at the start or the end. Dropout applies to the residual
    branches; attention and activation dropout stay 0 (cheap on CPU, and 0.1 residual dropout is the usual
    regulariser for a small translation model)."""
    from transformers import MBartConfig

    if preset not in SEQ2SEQ_PRESETS:
        raise UserError(f"model.preset: unknown encoder-decoder preset '{preset}'. "
                        f"Choose one of {', '.join(SEQ2SEQ_PRESETS)}.")
    shape = SEQ2SEQ_PRESETS[preset]
    pad, eos, bos = _token_ids(tokenizer)
    config = MBartConfig(
        vocab_size=len(tokenizer), max_position_embeddings=max_position, d_model=shape.d_model,
        encoder_layers=shape.encoder_layers, decoder_layers=shape.decoder_layers,
        encoder_attention_heads=shape.heads, decoder_attention_heads=shape.heads,
        encoder_ffn_dim=shape.ffn, decoder_ffn_dim=shape.ffn, activation_function="gelu",
        dropout=dropout, attention_dropout=0.0, activation_dropout=0.0, scale_embedding=True,
        tie_word_embeddings=True, pad_token_id=pad, eos_token_id=eos, bos_token_id=bos,
        decoder_start_token_id=eos, forced_eos_token_id=None)
    # CTranslate2's MBart converter takes decoding to start from a language code (mBART-25) when the config names
    # no tokenizer class or MBartTokenizer; naming ours makes it start from EOS, as this model does.
    config.tokenizer_class = "PreTrainedTokenizerFast"
    # fairseq's names for the pre-norm layout; mBART's hub configs carry them, CTranslate2's converter reads them.
    config.normalize_before = True
    config.normalize_embedding = True
    return config


def seq2seq_generation_config(config, num_beams: int = 4):
    """What `generate` (and the saved generation_config.json) uses: start from EOS, stop at EOS, beam 4, no forced
    tokens, at most `max_position_embeddings` tokens."""
    from transformers import GenerationConfig

    return GenerationConfig(decoder_start_token_id=config.decoder_start_token_id, eos_token_id=config.eos_token_id,
                            pad_token_id=config.pad_token_id, bos_token_id=config.bos_token_id, num_beams=num_beams,
                            max_length=config.max_position_embeddings, forced_bos_token_id=None,
                            forced_eos_token_id=None)


def build_seq2seq(preset: str, tokenizer, max_position: int = 256, dropout: float = 0.1, attention: str = "eager"):
    """A randomly initialised MBartForConditionalGeneration of a preset size, with its generation config (seed
    first for a reproducible init). `attention`: transformers' attention implementation for this model object;
    "eager" by default because it trains faster than "sdpa" on CPU at sentence lengths (see the module docstring).
    It is not written to config.json: a saved folder loads with transformers' default (sdpa)."""
    from transformers import MBartForConditionalGeneration

    from tuneforge.model.build import quiet_transformers

    quiet_transformers()
    config = seq2seq_config(preset, tokenizer, max_position, dropout)
    model = MBartForConditionalGeneration(config)
    model.set_attn_implementation(attention)
    model.generation_config = seq2seq_generation_config(config)
    return model


def is_seq2seq(folder) -> bool:
    """True when `folder`'s config.json describes a text encoder-decoder (T5, mT5, BART, MBart, Marian, Pegasus,
    M2M100, NLLB, ...); no weights are read. Speech and image encoder-decoders (Whisper, TrOCR) take no text in."""
    cfg = read_model_config(Path(folder))
    if not cfg:
        return False
    from transformers.models.auto import modeling_auto

    model_type = cfg.get("model_type", "")
    if model_type in modeling_auto.MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES:
        return True
    other_inputs = ("MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES", "MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES")
    if any(model_type in getattr(modeling_auto, name, {}) for name in other_inputs):
        return False
    return bool(cfg.get("is_encoder_decoder"))


def load_seq2seq(name: str, dtype=None):
    """A pretrained encoder-decoder (alias, folder or hub id) in eval mode, fp32 by default."""
    from transformers import AutoModelForSeq2SeqLM

    from tuneforge.model.build import load_pretrained

    return load_pretrained(name, AutoModelForSeq2SeqLM, "an encoder-decoder", is_seq2seq, _not_seq2seq, dtype)


def _not_seq2seq(name: str, path: Path) -> UserError:
    kind = (read_model_config(path) or {}).get("model_type") or "unknown"
    return UserError(f"{path}: a {kind} model is not an encoder-decoder; --task translation needs one (T5, BART, "
                     "Marian, mT5 ... or leave --model out to train one from scratch).")


def load_seq2seq_tokenizer(name: str):
    """The tokenizer of an encoder-decoder (or a tokenizer-only folder); pad = EOS when it has no pad token."""
    from tuneforge.model.build import load_tokenizer

    return load_tokenizer(name, pad_with_eos=True)


def seq2seq_flops_per_token(model, source_share: float = 0.5, length: int = 20) -> float:
    """Training FLOPs per (source + target) token, the MFU numerator: forward + backward = 3 × forward, 2 FLOPs per
    weight of every matmul a token passes through. A source token passes the encoder's linear layers; a target
    token the decoder's (self-attention, cross-attention, feed-forward) and the LM head (a tied embedding counted as
    the head it is; embedding lookups cost no FLOPs). Attention scores and mixing add 4 × length × d per layer and
    attention (decoder: self + cross). `source_share` is the source tokens' share of all tokens (about 0.5 for
    translation; the batches count both sides), `length` a typical padded sentence length."""
    import torch

    def linear_params(module) -> int:
        return sum(m.weight.numel() for m in module.modules() if isinstance(m, torch.nn.Linear))

    encoder, decoder = model.get_encoder(), model.get_decoder()
    head = model.get_output_embeddings()
    d = model.config.d_model if hasattr(model.config, "d_model") else model.config.hidden_size
    enc_layers = len(getattr(encoder, "layers", None) or getattr(encoder, "block", []))
    dec_layers = len(getattr(decoder, "layers", None) or getattr(decoder, "block", []))
    source = 2 * linear_params(encoder) + 4 * enc_layers * length * d
    target = 2 * (linear_params(decoder) + head.weight.numel()) + 2 * 4 * dec_layers * length * d
    return float(3 * (source_share * source + (1 - source_share) * target))

"""Helpers for the translation serving and CLI tests: a tiny MBart encoder-decoder folder built from config (d_model 32,
2 + 2 layers, 300-token word-level vocabulary; untrained, seeded) and a fake translator that records its calls.

Importable from unit and integration tests alike: pytest puts tests/ on sys.path for the root conftest.py.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path

SPECIALS = ["<pad>", "</s>", "<unk>", "<s>"]  # ids 0-3, as `tuneforge tokenizer train --type seq2seq` gives them
WORDS = ["a", "man", "woman", "dog", "is", "riding", "bike", "on", "the", "street", "two", "children", "play", "in",
         "park", "ein", "mann", "frau", "hund", "fährt", "fahrrad", "auf", "der", "straße", "zwei", "kinder",
         "spielen", "im", ".", ",", "!", "?"]
VOCAB_SIZE = 300


def build_tokenizer():
    """A word-level fast tokenizer whose every id decodes to a word (so any output of an untrained model does), with
    `</s>` appended to each text, as T5/Marian tokenizers do."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = SPECIALS + WORDS + [f"w{i}" for i in range(VOCAB_SIZE - len(SPECIALS) - len(WORDS))]
    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                   bos_token="<s>")


def build_tiny_mbart(folder: Path, positions: int = 64) -> Path:
    """The tiny MBartForConditionalGeneration (pad 0, EOS 1 = decoder start, BOS 3) with its tokenizer, generation
    config and a tuneforge.json saying task translation, as a model folder."""
    import torch
    from transformers import GenerationConfig, MBartConfig, MBartForConditionalGeneration

    folder.mkdir(parents=True, exist_ok=True)
    config = MBartConfig(vocab_size=VOCAB_SIZE, d_model=32, encoder_layers=2, decoder_layers=2,
                         encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                         max_position_embeddings=positions, pad_token_id=0, eos_token_id=1, bos_token_id=3,
                         decoder_start_token_id=1, forced_eos_token_id=None, scale_embedding=True,
                         dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, init_std=0.3)
    torch.manual_seed(0)
    model = MBartForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(decoder_start_token_id=1, eos_token_id=1, pad_token_id=0,
                                               bos_token_id=3, num_beams=4, max_length=positions)
    model.save_pretrained(folder)
    build_tokenizer().save_pretrained(folder)
    manifest = {"format": 1, "created": "2026-01-01T00:00:00Z", "task": "translation", "max_length": positions,
                "config_sha256": "c" * 64, "data": {"train": {"rows": 10, "sha256": "d" * 64}}}
    (folder / "tuneforge.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


class _Config:
    is_encoder_decoder, model_type, max_position_embeddings = True, "mbart", 64


class _Model:
    config = _Config()


class FakeTranslator:
    """The Translator interface with injectable behaviour: records each call (texts and options), can block on
    `gate`, fail on a text containing "boom"; the translation is the text reversed word by word, tagged with the
    beam size."""

    def __init__(self):
        self.model, self.tokenizer, self.manifest, self.max_source_length = _Model(), None, None, 32
        self.calls: list[tuple[list[str], dict]] = []
        self.gate = threading.Event()
        self.gate.set()

    def translate(self, texts, beams=4, length_penalty=1.0, max_new_tokens=None, no_repeat_ngram=0):
        self.calls.append((list(texts), {"beams": beams, "length_penalty": length_penalty,
                                         "max_new_tokens": max_new_tokens, "no_repeat_ngram": no_repeat_ngram}))
        self.gate.wait(10)
        if any("boom" in t for t in texts):
            raise RuntimeError("boom")
        return [f"{' '.join(reversed(t.split()))} #{beams}" for t in texts]


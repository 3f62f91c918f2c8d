"""What the server holds for an encoder-decoder (`ServedTranslator`): the loaded `generate.translate.Translator`, a
request's decoding options checked against the server's and the model's limits (a 400 naming the flag or field),
and the one model call the batcher makes for many requests.

Requests with the same decoding options share one batched model call; the options are the batch key, so a beam-1
request never waits behind, or changes, a beam-8 one. Empty (or whitespace-only) texts translate to "" without
reaching the model, as `tuneforge translate` maps an empty line to an empty line.
"""
from __future__ import annotations

from typing import NamedTuple

from tuneforge.errors import UserError

DEFAULT_BEAMS = 4  # as `tuneforge translate --beams` and the fine-tune's final decoding (eval.beams)
TASKS = ("translation", "seq2seq")


class DecodeOptions(NamedTuple):
    """One request's decoding options; hashable, so it is (part of) the batcher's key."""

    beams: int = DEFAULT_BEAMS
    max_new_tokens: int | None = None  # None: the Translator's own cap (from the source length)
    length_penalty: float = 1.0
    no_repeat_ngram: int = 0


def _positions(model) -> int | None:
    """Target positions the decoder has (learned positions: BART, MBart, Marian); None for relative ones (T5)."""
    config = getattr(model, "config", None)
    if getattr(config, "model_type", "") in ("t5", "mt5", "umt5", "longt5"):
        return None
    value = getattr(config, "max_position_embeddings", None)
    return int(value) if isinstance(value, int) and value > 0 else None


class ServedTranslator:
    """An encoder-decoder as the app serves it: `translator` is a `tuneforge.generate.translate.Translator` (or
    anything with its `translate(texts, beams, length_penalty, max_new_tokens, no_repeat_ngram)`, `model` and
    `tokenizer`; tests pass a fake). `max_length` is what /v1/model reports: source tokens per text, longer sources
    are cut."""

    labels = None  # no classification head

    def __init__(self, translator, task: str | None = None):
        self.translator = translator
        self.model, self.tokenizer = translator.model, translator.tokenizer
        manifest_task = getattr(getattr(translator, "manifest", None), "task", None)
        self.task = task or (manifest_task if manifest_task in TASKS else "translation")
        self.positions = _positions(self.model)

    @property
    def max_length(self) -> int:
        limit = getattr(self.translator, "source_limit", None)  # max_source_length, capped by the encoder's positions
        return int(limit()) if callable(limit) else int(getattr(self.translator, "max_source_length", None) or 256)

    def options(self, beams: int | None, max_new_tokens: int | None, length_penalty: float | None,
                no_repeat_ngram: int | None, max_beams: int, max_tokens: int) -> DecodeOptions:
        """A request's options with the defaults filled in; UserError (a 400) for what this server or model cannot
        do. The schema has already refused beams < 1, max_new_tokens < 1 and no_repeat_ngram < 0 (422)."""
        beams = DEFAULT_BEAMS if beams is None else beams
        if beams > max_beams:
            raise UserError(f"beams={beams} is over this server's limit of {max_beams} (--max-beams); beam search "
                            "costs about beams times the work of greedy decoding")
        if max_new_tokens is not None:
            if max_new_tokens > max_tokens:
                raise UserError(f"max_new_tokens={max_new_tokens} is over this server's limit of {max_tokens} "
                                "(--max-tokens)")
            if self.positions is not None and max_new_tokens > self.positions:
                raise UserError(f"max_new_tokens={max_new_tokens} is more than the model's {self.positions} target "
                                "positions; ask for fewer")
        return DecodeOptions(beams, max_new_tokens, 1.0 if length_penalty is None else float(length_penalty),
                             0 if no_repeat_ngram is None else no_repeat_ngram)

    def translate(self, texts: list[str], options: DecodeOptions = DecodeOptions()) -> list[str]:
        """Translations in input order; an empty or whitespace-only text gives "" and costs nothing."""
        todo = [i for i, text in enumerate(texts) if text.strip()]
        out = [""] * len(texts)
        if todo:
            done = self.translator.translate([texts[i] for i in todo], beams=options.beams,
                                             length_penalty=options.length_penalty,
                                             max_new_tokens=options.max_new_tokens,
                                             no_repeat_ngram=options.no_repeat_ngram)
            for i, text in zip(todo, done):
                out[i] = text
        return out

    def describe(self, max_beams: int, max_tokens: int) -> dict:
        """The decoding part of /v1/model: defaults and limits a client can plan with."""
        return {"beams": DEFAULT_BEAMS, "max_beams": max_beams, "length_penalty": 1.0, "no_repeat_ngram": 0,
                "max_new_tokens": None, "max_new_tokens_limit": min(max_tokens, self.positions or max_tokens),
                "max_source_tokens": self.max_length}


def as_translator(predictor) -> ServedTranslator | None:
    """The ServedTranslator for an encoder-decoder (a ServedTranslator, or what `tuneforge.load` returns for one: an
    object with `.translate` and an encoder-decoder `.model`); None for every other model kind."""
    if isinstance(predictor, ServedTranslator):
        return predictor
    model = getattr(predictor, "model", None)
    is_seq2seq = bool(getattr(getattr(model, "config", None), "is_encoder_decoder", False))
    return ServedTranslator(predictor) if is_seq2seq and callable(getattr(predictor, "translate", None)) else None

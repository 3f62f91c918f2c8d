"""What the server needs of a causal LM (`ServedGenerator`: model, tokenizer, context length, an engine), and the
translation of an OpenAI-style request into prompt token ids and `GenerationSettings`, with a 400 (UserError) or a
413 naming what cannot be served and what to send instead."""
from __future__ import annotations

from collections.abc import Callable

from starlette.exceptions import HTTPException

from tuneforge.errors import UserError

MAX_STOP_STRINGS = 4  # OpenAI's limit
# (field, is refused, message): fields that would change the answer and that this server cannot honour.
REFUSED: tuple[tuple[str, Callable, str], ...] = (
    ("n", lambda v: v != 1, "n={v}: this server returns one choice per request (n=1); send {v} requests instead"),
    ("best_of", lambda v: v not in (None, 1), "best_of={v}: only 1 is supported"),
    ("presence_penalty", lambda v: v not in (None, 0), "presence_penalty is not supported; send 0, or the "
                                                       "extension repetition_penalty (e.g. 1.1)"),
    ("frequency_penalty", lambda v: v not in (None, 0), "frequency_penalty is not supported; send 0, or the "
                                                        "extension repetition_penalty (e.g. 1.1)"),
    ("logprobs", lambda v: v not in (None, False, 0), "logprobs are not supported by this server"),
    ("top_logprobs", lambda v: v not in (None, 0), "top_logprobs are not supported by this server"),
    ("tools", bool, "tools (function calling) are not supported by this server"),
    ("echo", bool, "echo is not supported by this server"),
    ("suffix", bool, "suffix (text insertion) is not supported by this server"),
)


def _is_causal(model) -> bool:
    names = [type(model).__name__, *(getattr(getattr(model, "config", None), "architectures", None) or [])]
    return any(n.endswith(("ForCausalLM", "LMHeadModel")) for n in names)


def context_length(model, tokenizer) -> int:
    """Tokens the model attends to: the config's positions (2048 when it names none), or the tokenizer's limit when
    that is smaller (and set: transformers uses a huge number for 'unknown')."""
    from tuneforge.generate.chat import context_length as positions_of

    positions = positions_of(model) or 2048
    limit = getattr(tokenizer, "model_max_length", None)
    return int(min(positions, limit)) if isinstance(limit, int) and 0 < limit < 10**7 else int(positions)


class ServedGenerator:
    """A causal LM as the app serves it. `make_engine(max_batch)` builds the engine (default: the real
    `tuneforge.generate.engine.Engine`; tests pass a fake)."""

    task, labels = "text-generation", None  # what /v1/model reports; no classification head

    def __init__(self, model, tokenizer, make_engine: Callable[[int], object] | None = None,
                 context: int | None = None):
        self.model, self.tokenizer, self.make_engine = model, tokenizer, make_engine
        self.context = context or context_length(model, tokenizer)
        self.vocab_size = int(getattr(model.config, "vocab_size", 0) or len(tokenizer))

    @property
    def max_length(self) -> int:
        return self.context

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def engine(self, max_batch: int):
        if self.make_engine is not None:
            return self.make_engine(max_batch)
        from tuneforge.generate.engine import Engine

        return Engine(self.model, self.tokenizer, max_batch=max_batch)


def as_generator(predictor) -> ServedGenerator | None:
    """The ServedGenerator for a causal LM (a ServedGenerator, or anything with a causal `.model` and a
    `.tokenizer`, such as what `tuneforge.load` returns for one); None for classifiers and encoders."""
    if isinstance(predictor, ServedGenerator):
        return predictor
    model, tokenizer = getattr(predictor, "model", None), getattr(predictor, "tokenizer", None)
    return ServedGenerator(model, tokenizer) if model is not None and tokenizer is not None and _is_causal(model) \
        else None


def _checked_text(text: str, where: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # JSON may carry lone surrogates ("\ud800"); tokenizers reject them
        raise UserError(f"{where} is not valid Unicode: {exc.reason} at character {exc.start}") from None
    return text


def _check_chars(chars: int, limit: int) -> None:
    if chars > limit:
        raise HTTPException(413, f"the prompt has {chars} characters; the limit is {limit} (--max-prompt-chars)")


def _content(content, i: int) -> str:
    if content is None or isinstance(content, str):
        return _checked_text(content or "", f"messages[{i}].content")
    texts = []
    for j, part in enumerate(content):
        if part.type != "text" or part.text is None:
            raise UserError(f"messages[{i}].content[{j}]: only text parts are supported (got type '{part.type}')")
        texts.append(_checked_text(part.text, f"messages[{i}].content[{j}].text"))
    return "\n".join(texts)


def _fits(ids: list[int], context: int) -> list[int]:
    if len(ids) >= context:
        raise UserError(f"the prompt is {len(ids)} tokens; the model's context of {context} tokens must hold the "
                        "prompt and the answer: shorten it")
    return ids


def chat_ids(generator: ServedGenerator, messages: list, max_chars: int) -> list[int]:
    """The conversation through the tokenizer's chat template, as prompt token ids. `developer` (OpenAI's newer
    name for system) is read as system; other roles are checked by `chat_prompt`."""
    from tuneforge.generate.chat import chat_prompt, prompt_ids

    plain = [{"role": "system" if m.role == "developer" else m.role, "content": _content(m.content, i)}
             for i, m in enumerate(messages)]
    _check_chars(sum(len(m["content"]) for m in plain), max_chars)
    text = chat_prompt(generator.tokenizer, plain, where="messages")
    return _fits(prompt_ids(generator.tokenizer, text, None, where="messages", templated=True), generator.context)


def completion_ids(generator: ServedGenerator, prompt, max_chars: int) -> list[int]:
    """One prompt: a string or token ids (a list holding one of either is read as that one)."""
    from tuneforge.generate.chat import prompt_ids

    if isinstance(prompt, list) and prompt and isinstance(prompt[0], (str, list)):
        if len(prompt) != 1:
            raise UserError(f"prompt: {len(prompt)} prompts in one request; send one prompt per request")
        prompt = prompt[0]
    if isinstance(prompt, str):
        _check_chars(len(prompt), max_chars)
        ids = prompt_ids(generator.tokenizer, _checked_text(prompt, "prompt"), None, where="prompt")
        return _fits(list(ids), generator.context)
    if not prompt:
        raise UserError("prompt: the prompt is empty; send some text (or token ids)")
    bad = next((t for t in prompt if not 0 <= t < generator.vocab_size), None)
    if bad is not None:
        raise UserError(f"prompt: token id {bad} is outside the vocabulary (0 to {generator.vocab_size - 1})")
    return _fits(list(prompt), generator.context)


def refuse_unsupported(body) -> None:
    for name, refused, message in REFUSED:
        value = getattr(body, name, None)
        if refused(value):
            raise UserError(message.format(v=value))


def _max_new_tokens(body, prompt_tokens: int, context: int, cap: int) -> int:
    asked = getattr(body, "max_completion_tokens", None) or body.max_tokens
    room = context - prompt_tokens
    if asked is None:
        if room < 1:
            raise UserError(f"the prompt has {prompt_tokens} tokens, the model's whole context ({context}); "
                            "shorten it")
        return min(cap, room)
    if asked < 1:
        raise UserError(f"max_tokens={asked}: ask for at least 1 token")
    if asked > cap:
        raise UserError(f"max_tokens={asked} is over this server's limit of {cap} (--max-tokens)")
    if asked > room:
        raise UserError(f"the prompt has {prompt_tokens} tokens and max_tokens is {asked}: together more than the "
                        f"model's context of {context} tokens; shorten the prompt or lower max_tokens")
    return asked


def generation_settings(body, prompt_tokens: int, context: int, cap: int):
    """GenerationSettings for a request; OpenAI's defaults (temperature 1, top_p 1) where it names none."""
    from tuneforge.generate.settings import GenerationSettings

    refuse_unsupported(body)
    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    if len(stop) > MAX_STOP_STRINGS:
        raise UserError(f"stop: {len(stop)} strings; at most {MAX_STOP_STRINGS}")
    settings = GenerationSettings(
        max_new_tokens=_max_new_tokens(body, prompt_tokens, context, cap),
        temperature=1.0 if body.temperature is None else body.temperature,
        top_p=1.0 if body.top_p is None else body.top_p, top_k=body.top_k or 0,
        repetition_penalty=1.0 if body.repetition_penalty is None else body.repetition_penalty,
        seed=body.seed, stop=tuple(_checked_text(s, "stop") for s in stop if s))
    settings.check()
    return settings

"""Whole completions and text streams on top of the engine: `generate` (many prompts, batched, results in prompt
order) and `stream` (one prompt's text as it comes)."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from tuneforge.generate.chat import context_length, prompt_ids
from tuneforge.generate.engine import Engine, Event
from tuneforge.generate.settings import GenerationSettings


@dataclass
class Completion:
    """One prompt's result: the text (stop string trimmed), the generated ids (an ending EOS included, as it was
    generated), token counts and why it ended ("stop" | "length" | "cancelled")."""

    text: str
    token_ids: list[int]
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


def encode(model, tokenizer, prompt: str | list[int], settings: GenerationSettings, where: str = "prompt",
           templated: bool = False) -> list[int]:
    """Ids for a text prompt (checked against the context, see chat.prompt_ids); a list of ids passes through."""
    if isinstance(prompt, list) and all(isinstance(t, int) for t in prompt):
        return prompt
    return prompt_ids(tokenizer, prompt, context_length(model), settings.max_new_tokens, where, templated)


def generate(model, tokenizer, prompts: list[str] | list[list[int]], settings: GenerationSettings | None = None,
             batch_size: int = 16, fast: bool = True) -> list[Completion]:
    """Complete every prompt (text or token ids), `batch_size` sequences decoding together; results in order.
    The model runs in eval mode and is put back in the mode it was in."""
    settings = (settings or GenerationSettings()).check()
    ids = [encode(model, tokenizer, p, settings, f"prompt {i + 1}") for i, p in enumerate(prompts)]
    training = model.training  # e.g. report samples in the middle of a run: no dropout while generating
    model.eval()
    try:
        return run(Engine(model, tokenizer, max_batch=batch_size, fast=fast), ids, settings)
    finally:
        model.train(training)


def run(engine: Engine, prompts: list[list[int]], settings: GenerationSettings | list[GenerationSettings],
        on_finish: Callable[[int, Completion], None] | None = None) -> list[Completion]:
    """Drive `engine` until every prompt is complete; `settings` is one for all or one per prompt. `on_finish(i,
    completion)` is called as each finishes (progress bars, streaming writers)."""
    each = settings if isinstance(settings, list) else [settings] * len(prompts)
    order = {engine.add(p, s): i for i, (p, s) in enumerate(zip(prompts, each))}
    texts, tokens = {i: [] for i in order}, {i: [] for i in order}
    done: dict[int, Completion] = {}
    while len(done) < len(order):
        for event in engine.step():
            if event.seq_id not in order:
                continue  # another caller's sequence on a shared engine
            texts[event.seq_id].append(event.text_delta)
            tokens[event.seq_id] += event.token_ids
            if event.finished:
                i = order[event.seq_id]
                done[i] = _completion(texts[event.seq_id], tokens[event.seq_id], prompts[i], event)
                if on_finish:
                    on_finish(i, done[i])
    return [done[i] for i in range(len(prompts))]


def _completion(texts: list[str], tokens: list[int], prompt: list[int], event: Event) -> Completion:
    return Completion("".join(texts), tokens, len(prompt), len(tokens), event.finish_reason)


def stream(model, tokenizer, prompt: str | list[int], settings: GenerationSettings | None = None,
           fast: bool = True) -> Iterator[str]:
    """The completion of one prompt as text pieces, each yielded as soon as it is whole (UTF-8 characters are
    never split; text that may be the start of a stop string waits until it is known not to be)."""
    settings = (settings or GenerationSettings()).check()
    ids = encode(model, tokenizer, prompt, settings)
    yield from stream_ids(Engine(model, tokenizer, max_batch=1, fast=fast), ids, settings)


def stream_ids(engine: Engine, ids: list[int], settings: GenerationSettings,
               last: Callable[[Event], None] | None = None) -> Iterator[str]:
    """Text pieces of one sequence on `engine`; `last(event)` sees its final event (finish reason). Closing the
    iterator early cancels the sequence."""
    seq_id = engine.add(ids, settings)
    finished = False
    try:
        while not finished:
            for event in engine.step():
                if event.seq_id != seq_id:
                    continue
                finished = event.finished
                if event.text_delta:
                    yield event.text_delta
                if finished and last:
                    last(event)
    finally:
        if not finished:
            engine.cancel(seq_id)
            engine.step()

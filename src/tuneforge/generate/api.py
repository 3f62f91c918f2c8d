"""`TextGenerator`: what `tuneforge.load` returns for a causal-LM folder. Plain text prompts are continued as they
are; `chat` renders messages with the tokenizer's chat template. Keyword settings are GenerationSettings fields."""
from __future__ import annotations

from collections.abc import Iterator

from tuneforge.generate.chat import chat_prompt, context_length
from tuneforge.generate.decode import Completion, encode, run, stream_ids
from tuneforge.generate.engine import Engine
from tuneforge.generate.settings import GenerationSettings, make_settings
from tuneforge.generate.text import check_stops


class TextGenerator:
    """A causal LM and its tokenizer with one decoding engine. `settings` are the defaults each call's keywords
    override (max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed, stop)."""

    def __init__(self, model, tokenizer, settings: GenerationSettings | None = None, max_batch: int = 16,
                 fast: bool = True):
        self.model, self.tokenizer = model, tokenizer
        self.settings = (settings or GenerationSettings()).check()
        self.engine = Engine(model, tokenizer, max_batch=max_batch, fast=fast)

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    @property
    def context(self) -> int | None:
        return context_length(self.model)

    def generate(self, prompt: str | list[str], **settings) -> str | list[str]:
        """The continuation of `prompt` (a list of prompts: a list of continuations, decoded as one batch)."""
        if isinstance(prompt, list):
            return [c.text for c in self.complete(prompt, **settings)]
        return self.complete([prompt], **settings)[0].text

    def complete(self, prompts: list[str], chat: bool = False, **settings) -> list[Completion]:
        """Completions with token counts and finish reasons; `chat=True` takes message lists instead of texts."""
        s = self.settings_for(**settings)
        name = "messages" if chat else "prompt"
        ids = [self.encode(p, s, f"{name} {i + 1}" if len(prompts) > 1 else name, chat) for i, p in enumerate(prompts)]
        return run(self.engine, ids, s)

    def stream(self, prompt: str | list[dict], **settings) -> Iterator[str]:
        """The continuation of a text prompt (or the reply to a message list) as text pieces, as they come."""
        s = self.settings_for(**settings)
        return stream_ids(self.engine, self.encode(prompt, s, "prompt", isinstance(prompt, list)), s)

    def chat(self, messages: list[dict], **settings) -> str:
        """The assistant's reply to `messages` (roles system/user/assistant), through the chat template."""
        return self.complete([messages], chat=True, **settings)[0].text

    def settings_for(self, **changes) -> GenerationSettings:
        """The defaults with `changes`, checked (stop strings against this tokenizer too)."""
        settings = make_settings(self.settings, **changes)
        check_stops(self.tokenizer, settings.stop)
        return settings

    def encode(self, prompt, settings: GenerationSettings, where: str = "prompt", chat: bool = False) -> list[int]:
        """Prompt token ids: a text as it is, or (`chat`) a message list through the chat template; checked
        against the context (UserError naming `where`)."""
        if chat:
            text = chat_prompt(self.tokenizer, prompt, where)
            return encode(self.model, self.tokenizer, text, settings, where, templated=True)
        return encode(self.model, self.tokenizer, prompt, settings, where)

"""Request and response bodies of the OpenAI-compatible routes (chat completions, completions, models), shaped as
OpenAI's API documents them so that the official `openai` client works unchanged.

Requests keep unknown fields (`extra="allow"`): OpenAI clients send fields this server has no use for (`user`,
`metadata`, `store`...), and refusing them would break those clients. Fields that would change the answer and that
this server cannot honour (n > 1, logprobs, tools...) are refused with a 400 by `completions.unsupported`.
Sampling values are range-checked by `GenerationSettings.check`, so a bad value is a 400 with one line, as
OpenAI answers, not a schema error.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

_OPEN = ConfigDict(extra="allow")


class ContentPart(BaseModel):
    model_config = _OPEN
    type: str = Field(..., description="Only `text` parts are read.")
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = _OPEN
    role: str = Field(..., description="system, user or assistant (`developer` is read as system).")
    content: str | list[ContentPart] | None = Field(None, description="The text, or a list of text parts.")
    name: str | None = None


class StreamOptions(BaseModel):
    model_config = _OPEN
    include_usage: bool = Field(False, description="Send one last chunk with `usage` and no choices.")


class SamplingFields(BaseModel):
    """What chat and plain completions share."""

    model_config = _OPEN
    model: str | None = Field(None, description="Any name: this server serves one model and answers with its name.")
    max_tokens: int | None = Field(None, description="Most tokens to generate. Default: up to the model's context, "
                                                     "at most the server's `--max-tokens` (which also caps it).")
    temperature: float | None = Field(None, description="0 is greedy. Default 1.0, as in OpenAI's API.")
    top_p: float | None = Field(None, description="Nucleus sampling. Default 1.0 (off).")
    stop: str | list[str] | None = Field(None, description="Up to 4 strings; the text ends before the first one.")
    stream: bool = Field(False, description="Server-sent events: `data: {chunk}` lines, then `data: [DONE]`.")
    stream_options: StreamOptions | None = None
    seed: int | None = Field(None, description="Same seed, prompt and settings: same text (when sampling).")
    n: int = Field(1, description="Choices per request: only 1.")
    presence_penalty: float | None = Field(None, description="Only 0 (or absent).")
    frequency_penalty: float | None = Field(None, description="Only 0 (or absent).")
    # Extensions under vLLM's names (the openai client sends them through `extra_body`).
    top_k: int | None = Field(None, description="Extension: sample among the k most likely tokens (0: off).")
    repetition_penalty: float | None = Field(None, description="Extension: > 1 discourages repeats (1: off).")


class ChatCompletionRequest(SamplingFields):
    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [
        {"model": "tuneforge", "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 32}]})
    messages: list[ChatMessage] = Field(..., min_length=1, description="The conversation so far.")
    max_completion_tokens: int | None = Field(None, description="OpenAI's newer name for max_tokens.")
    logprobs: bool | None = None
    top_logprobs: int | None = None
    tools: list | None = None


class CompletionRequest(SamplingFields):
    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [
        {"model": "tuneforge", "prompt": "Once upon a time", "max_tokens": 32}]})
    prompt: str | list[str] | list[int] | list[list[int]] = Field(
        ..., description="One prompt: a string, or a list of token ids (a list with one of either is read too).")
    echo: bool | None = None
    logprobs: int | None = None
    best_of: int | None = None
    suffix: str | None = None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: str | None = Field(..., description="stop (end of text or a stop string) or length (max_tokens).")
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    system_fingerprint: str | None = None


class CompletionChoice(BaseModel):
    index: int
    text: str
    finish_reason: str | None
    logprobs: None = None


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage
    system_fingerprint: str | None = None


class ChunkDelta(BaseModel):
    role: str | None = None
    content: str | None = None


class ChatChunkChoice(BaseModel):
    index: int
    delta: ChunkDelta
    finish_reason: str | None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    """One server-sent event of a streamed chat completion (what the tests check every chunk against)."""

    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None


class CompletionChunk(BaseModel):
    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "tuneforge"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]

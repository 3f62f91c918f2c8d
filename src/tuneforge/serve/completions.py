"""The OpenAI-compatible routes of a causal LM: POST /v1/chat/completions, POST /v1/completions, GET /v1/models.

A request is checked and tokenized on the event loop (so a bad one is a 4xx before anything streams), then handed
to the `GenerationBatcher`. `stream: true` answers server-sent events (`data: {chunk}` … `data: [DONE]`); a client
that disconnects, streaming or not, cancels its generation in the engine.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from tuneforge.serve import openai_schemas as oa
from tuneforge.serve.generation_batcher import Generation, GenerationBatcher
from tuneforge.serve.generator import ServedGenerator, chat_ids, completion_ids, generation_settings

log = logging.getLogger("tuneforge.serve")
DRAIN_S = 30.0  # after uvicorn's own wait: generations still running get this long, then are cancelled
STREAM_DOC = {"description": "With `stream: true`: `text/event-stream`, one `data: {chunk}` event per piece of "
                             "text, then `data: [DONE]`.", "content": {"text/event-stream": {}}}


def start_generation(generator: ServedGenerator, settings, metrics) -> GenerationBatcher:
    """The batcher (and its engine) for the app's lifespan; its observers feed /metrics."""
    def done(gen: Generation) -> None:
        first = gen.first_token_at
        metrics.record_generation(len(gen.prompt_ids), gen.completion_tokens,
                                  first - gen.submitted if first else None,
                                  time.perf_counter() - first if first else None)

    metrics.generating = True
    return GenerationBatcher(generator.engine(settings.max_sequences), settings.max_sequences, settings.batching,
                             on_step=metrics.record_step, on_done=done)


async def warm_up_generation(batcher: GenerationBatcher, generator: ServedGenerator) -> None:
    """Two tokens through the real path (first calls allocate and tune kernels)."""
    from tuneforge.generate.settings import GenerationSettings

    ids = generator.tokenizer("warm up", add_special_tokens=False)["input_ids"] or [0]
    async for _ in batcher.stream(batcher.submit(ids, GenerationSettings(max_new_tokens=2))):
        pass


class Reply:
    """One response's id, time and model name, and the JSON of its parts (whole, or as SSE chunks)."""

    def __init__(self, chat: bool, model: str, include_usage: bool = False):
        self.chat, self.model, self.include_usage = chat, model, include_usage
        self.id = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        self.created = int(time.time())

    def _head(self) -> dict:
        kind = ("chat.completion.chunk" if self.chat else "text_completion")
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model,
                "system_fingerprint": None}

    def chunk(self, text: str | None = None, reason: str | None = None, role: bool = False) -> str:
        if self.chat:
            delta = {"role": "assistant", "content": ""} if role else ({"content": text} if text else {})
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
        else:
            choice = {"index": 0, "text": text or "", "logprobs": None, "finish_reason": reason}
        return sse({**self._head(), "choices": [choice], **({"usage": None} if self.include_usage else {})})

    def usage_chunk(self, prompt_tokens: int, completion_tokens: int) -> str:
        return sse({**self._head(), "choices": [], "usage": usage(prompt_tokens, completion_tokens)})

    def whole(self, text: str, reason: str | None, prompt_tokens: int, completion_tokens: int) -> dict:
        choice = {"index": 0, "logprobs": None, "finish_reason": reason,
                  **({"message": {"role": "assistant", "content": text}} if self.chat else {"text": text})}
        return {**self._head(), "object": "chat.completion" if self.chat else "text_completion",
                "choices": [choice], "usage": usage(prompt_tokens, completion_tokens)}


def sse(payload: dict | str) -> str:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)}\n\n"


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


async def _events(batcher: GenerationBatcher, gen: Generation, reply: Reply):
    tokens, reason = 0, None
    if reply.chat:
        yield reply.chunk(role=True)
    try:
        async for event in batcher.stream(gen):
            tokens += len(event.token_ids)
            if event.text_delta:
                yield reply.chunk(text=event.text_delta)
            if event.finished:
                reason = event.finish_reason
    except Exception:  # noqa: BLE001 - the status line is sent already: say it in the stream, log the rest
        log.exception("generation failed while streaming")
        yield sse({"error": {"message": "internal server error", "type": "server_error", "param": None,
                             "code": None}})
        return
    yield reply.chunk(reason=reason)
    if reply.include_usage:
        yield reply.usage_chunk(len(gen.prompt_ids), tokens)
    yield sse("[DONE]")


class EventStream(StreamingResponse):
    """Server-sent events that cancel their generation however the response ends (done, client gone, server
    stopping), even when the stream was never started."""

    def __init__(self, content, on_close):
        super().__init__(content, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.on_close = on_close

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.on_close()


async def _disconnected(request: Request) -> None:
    """Returns when the client goes away (the body was read already, so the next message is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _collect(request: Request, batcher: GenerationBatcher, gen: Generation) -> tuple[str, str, int] | None:
    """The whole text, finish reason and token count; None when the client left first (then it is cancelled)."""
    async def collect():
        parts, reason, tokens = [], None, 0
        async for event in batcher.stream(gen):
            parts.append(event.text_delta)
            tokens += len(event.token_ids)
            reason = event.finish_reason if event.finished else reason
        return "".join(parts), reason, tokens

    work, gone = asyncio.ensure_future(collect()), asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not work.done():
            work.cancel()  # its stream's cleanup cancels the generation in the engine
            await asyncio.gather(work, return_exceptions=True)
    return None if work.cancelled() else work.result()


async def _answer(request: Request, body, ids: list[int], gen_settings, reply: Reply):
    batcher: GenerationBatcher = request.app.state.batcher
    gen = batcher.submit(ids, gen_settings)
    if body.stream:
        return EventStream(_events(batcher, gen, reply), on_close=lambda: batcher.cancel(gen))
    done = await _collect(request, batcher, gen)
    if done is None:
        return JSONResponse({"detail": "the client closed the request"}, 499)
    return reply.whole(done[0], done[1], len(ids), done[2])


def add_generation_routes(app: FastAPI, generator: ServedGenerator, settings, name: str, guard: list,
                          errors: dict) -> None:
    responses = {**errors, 200: STREAM_DOC}

    @app.post("/v1/chat/completions", response_model=oa.ChatCompletion, responses=responses, dependencies=guard,
              summary="OpenAI-compatible chat completion (the tokenizer's chat template), optionally streamed")
    async def chat(body: oa.ChatCompletionRequest, request: Request):
        ids = chat_ids(generator, body.messages, settings.max_prompt_chars)
        gen_settings = generation_settings(body, len(ids), generator.context, settings.max_tokens)
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return await _answer(request, body, ids, gen_settings, Reply(True, name, include_usage))

    @app.post("/v1/completions", response_model=oa.Completion, responses=responses, dependencies=guard,
              summary="OpenAI-compatible text completion of one prompt, optionally streamed")
    async def complete(body: oa.CompletionRequest, request: Request):
        ids = completion_ids(generator, body.prompt, settings.max_prompt_chars)
        gen_settings = generation_settings(body, len(ids), generator.context, settings.max_tokens)
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return await _answer(request, body, ids, gen_settings, Reply(False, name, include_usage))

    created = int(time.time())

    @app.get("/v1/models", response_model=oa.ModelList, responses=errors, dependencies=guard,
             summary="OpenAI-compatible list of models: the one served")
    async def models():
        return {"object": "list", "data": [{"id": name, "object": "model", "created": created,
                                            "owned_by": "tuneforge"}]}

    @app.get("/v1/models/{model_id:path}", response_model=oa.ModelCard, responses=errors, dependencies=guard,
             summary="OpenAI-compatible model lookup")
    async def model(model_id: str):
        if model_id != name:
            return JSONResponse({"detail": f"no model '{model_id}': this server serves '{name}'",
                                 "error": {"message": f"no model '{model_id}'; this server serves '{name}'",
                                           "type": "invalid_request_error", "param": "model",
                                           "code": "model_not_found"}}, 404)
        return {"id": name, "object": "model", "created": created, "owned_by": "tuneforge"}

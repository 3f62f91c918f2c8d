"""The HTTP API (FastAPI): `create_app(predictor, settings)` wires routes, limits, auth, batching and metrics.

The routes follow the model: a classifier or encoder answers /v1/predict and /v1/embed (dynamic batching); a causal
LM answers the OpenAI-compatible /v1/chat/completions, /v1/completions and /v1/models (continuous batching,
`completions.py`); an encoder-decoder answers /v1/translate (dynamic batching, `translator.py`); each kind's routes
on another kind are a 400 naming the routes it has.
Open without a key: /, /health, /ready, /docs and /openapi.json (nothing in them is private). With an API key set,
/v1/* and /metrics need `Authorization: Bearer <key>`, checked before the body is read.
"""
from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from dataclasses import dataclass

import numpy as np
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from fastapi.security import HTTPBearer
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException

from tuneforge.errors import UserError
from tuneforge.serve import schemas
from tuneforge.serve.batcher import BatcherClosed, DynamicBatcher
from tuneforge.serve.chat_page import CHAT_PAGE
from tuneforge.serve.completions import DRAIN_S, add_generation_routes, start_generation, warm_up_generation
from tuneforge.serve.generator import as_generator
from tuneforge.serve.info import describe_model
from tuneforge.serve.metrics import CONTENT_TYPE, ServeMetrics
from tuneforge.serve.middleware import BodyLimit, RequestContext, send_json
from tuneforge.serve.page import PAGE, TRANSLATE_PAGE
from tuneforge.serve.translator import DecodeOptions, ServedTranslator, as_translator

log = logging.getLogger("tuneforge.serve")
PROTECTED = ("/v1/", "/metrics")
OPENAI_PATHS = ("/v1/chat/", "/v1/completions", "/v1/models")  # error bodies there also carry OpenAI's shape
GENERATION_ROUTES = (("POST", "/v1/chat/completions"), ("POST", "/v1/completions"), ("GET", "/v1/models"))
ENCODER_ROUTES = (("POST", "/v1/predict"), ("POST", "/v1/embed"))
TRANSLATE_ROUTES = (("POST", "/v1/translate"),)
ERRORS = {code: {"model": schemas.ErrorBody, "description": text} for code, text in (
    (400, "The model cannot do this (e.g. /v1/predict on an encoder without a classification head), or a "
          "translation option over the server's or the model's limit."),
    (401, "Missing or wrong API key (only when the server has one)."),
    (413, "Too many texts, or the body is too large."),
    (503, "The server is shutting down."))}


@dataclass
class ServeSettings:
    """Server knobs; the CLI's `tuneforge serve` flags map one to one."""

    model_path: str | None = None  # for /v1/model (manifest, hashes)
    model_name: str | None = None  # the name /v1/model and /v1/models report (default: the folder's name)
    api_key: str | None = None
    max_batch_size: int = 64  # texts per model call
    max_wait_ms: float = 5.0  # how long the batcher waits for more requests after the first
    batching: bool = True  # False: one model call per request (the load test's baseline)
    max_texts: int = 64  # per request
    max_chars: int = 2000  # per text
    max_beams: int = 8  # encoder-decoders: the largest beam a /v1/translate request may ask for
    # causal LMs
    max_sequences: int = 16  # generations decoding together; more wait for a free slot
    max_tokens: int = 1024  # the most a request may ask for, and the default when it names none (translation: the
    # most max_new_tokens; its default comes from the source length)
    max_prompt_chars: int = 32000  # characters of prompt (all messages together)

    @property
    def max_body_bytes(self) -> int:
        # Worst case per character is a 6-byte JSON escape (\\uXXXX); 64 bytes of JSON overhead per text.
        return self.max_texts * (self.max_chars * 6 + 64) + 4096

    @property
    def max_generation_body_bytes(self) -> int:
        # The same escape bound on the prompt, plus 64 KiB for message wrappers and sampling fields.
        return self.max_prompt_chars * 6 + 65536


def authorized(header: str | None, key: str) -> bool:
    scheme, _, token = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode())


class AuthGate:
    """401 for protected paths without the right bearer token, before anything reads the body."""

    def __init__(self, app, key: str):
        self.app, self.key = app, key

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith(PROTECTED):
            header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            if not authorized(header, self.key):
                message = "missing or wrong API key: send the header 'Authorization: Bearer <key>'"
                return await send_json(send, 401, error_body(scope["path"], message, scope.get("state", {}).get(
                    "request_id"), kind="authentication_error"), [(b"www-authenticate", b"Bearer")])
        await self.app(scope, receive, send)


def error_body(path: str, message: str, request_id: str | None, detail=None, kind: str = "invalid_request_error"
               ) -> dict:
    """TuneForge's error body ({"detail", "request_id"}); on the OpenAI routes also OpenAI's {"error": {...}},
    which the openai client reads its message from."""
    body = {"detail": message if detail is None else detail, "request_id": request_id}
    if path.startswith(OPENAI_PATHS):
        body["error"] = {"message": message, "type": kind, "param": None, "code": None}
    return body


def _call_model(predictor):
    def run(key: tuple, texts: list[str]) -> list:
        if key[0] == "predict":
            return predictor.predict(texts)
        if key[0] == "translate":
            return predictor.translate(texts, key[1])
        return list(np.asarray(predictor.embed(texts, key[1], role=key[2]), dtype=np.float32))
    return run


def _check_texts(texts: list[str], settings: ServeSettings) -> None:
    """413 for too many texts; 422 for a text over the length limit or one that is not valid Unicode."""
    if len(texts) > settings.max_texts:
        raise HTTPException(413, f"too many texts: {len(texts)}; the limit is {settings.max_texts} per request "
                                 "(--max-texts)")
    for i, text in enumerate(texts):
        if len(text) > settings.max_chars:
            _invalid_text(i, "string_too_long", f"text has {len(text)} characters; the limit is "
                                                f"{settings.max_chars} (--max-chars)")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:  # JSON may carry lone surrogates ("\ud800"); tokenizers reject them
            _invalid_text(i, "string_unicode", f"text is not valid Unicode: {exc.reason} at character {exc.start}")


def _invalid_text(i: int, kind: str, message: str) -> None:
    raise RequestValidationError([{"loc": ("body", "texts", i), "type": kind, "msg": message}])


def create_app(predictor, settings: ServeSettings | None = None) -> FastAPI:
    """The app for one loaded predictor (or causal LM). The batcher starts with the app's lifespan and drains on
    shutdown."""
    settings = settings or ServeSettings()
    generator = as_generator(predictor)
    translator = as_translator(predictor) if generator is None else None
    metrics, info = ServeMetrics(), describe_model(generator or translator or predictor, settings.model_path)
    info["name"] = settings.model_name or info["name"]
    if translator is not None:
        info["translation"] = translator.describe(settings.max_beams, settings.max_tokens)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        if generator is not None:
            app.state.batcher = batcher = start_generation(generator, settings, metrics)
            warm = asyncio.create_task(_warm_up(lambda: warm_up_generation(batcher, generator), metrics))
        else:
            app.state.batcher = batcher = DynamicBatcher(_call_model(translator or predictor),
                                                         settings.max_batch_size, settings.max_wait_ms / 1000,
                                                         settings.batching, metrics.record_batch)
            key = ("translate", DecodeOptions(beams=1, max_new_tokens=4)) if translator is not None else \
                ("predict",) if predictor.labels is not None else ("embed", "mean", "query")
            warm = asyncio.create_task(_warm_up(lambda: batcher.run(key, ["warm up"]), metrics))
        try:
            yield
        finally:  # uvicorn has already waited for in-flight requests; the batcher finishes what is queued
            warm.cancel()
            await asyncio.to_thread(batcher.close, *((DRAIN_S,) if generator is not None else ()))

    # FastAPIOffline: /docs and /redoc from packaged assets, not a CDN, so the docs work offline too.
    app = FastAPIOffline(title="TuneForge", version=info["version"], lifespan=lifespan,
                         description=f"Serving **{info['name']}** ({info['task']}). See docs/commands/serve.md.")
    _add_error_handlers(app)
    guard = [Depends(HTTPBearer(auto_error=False))] if settings.api_key else []  # documents the scheme in /docs
    if generator is not None:
        add_generation_routes(app, generator, settings, info["name"], guard, ERRORS)
        _add_refusals(app, ENCODER_ROUTES + TRANSLATE_ROUTES, "this model generates text (a causal LM): it answers "
                      "POST /v1/chat/completions, POST /v1/completions, GET /v1/models and GET /v1/model")
    elif translator is not None:
        _add_translate_route(app, translator, settings, guard, info["name"])
        _add_refusals(app, ENCODER_ROUTES + GENERATION_ROUTES, f"this model is an encoder-decoder ({translator.task}"
                      "): it answers POST /v1/translate and GET /v1/model")
    else:
        _add_model_routes(app, predictor, settings, guard)
        kind = "a classifier" if predictor.labels is not None else "an encoder"
        _add_refusals(app, GENERATION_ROUTES, f"this model is {kind}: it answers POST /v1/predict, POST /v1/embed "
                      "and GET /v1/model; chat and completions need a causal LM folder (e.g. --model smollm2-135m)")
        _add_refusals(app, TRANSLATE_ROUTES, f"this model is {kind}: it answers POST /v1/predict, POST /v1/embed "
                      "and GET /v1/model; /v1/translate needs an encoder-decoder folder (e.g. a `tuneforge finetune "
                      "--task translation` run's final/)")
    _add_info_route(app, info, guard)
    page = CHAT_PAGE if generator is not None else TRANSLATE_PAGE if translator is not None else PAGE
    _add_service_routes(app, metrics, guard, page)
    # add_middleware puts the last one added outermost: request id/metrics/log/500 → auth → body limit → routes.
    app.add_middleware(BodyLimit, max_bytes=settings.max_generation_body_bytes if generator is not None
                       else settings.max_body_bytes)
    if settings.api_key:
        app.add_middleware(AuthGate, key=settings.api_key)
    app.add_middleware(RequestContext, metrics=metrics, endpoints={route.path for route in app.routes})
    return app


def _add_model_routes(app: FastAPI, predictor, settings: ServeSettings, guard: list) -> None:
    @app.post("/v1/predict", response_model=schemas.PredictResponse, responses=ERRORS, dependencies=guard,
              summary="Labels and probabilities for a batch of texts")
    async def predict(body: schemas.PredictRequest, request: Request):
        _check_texts(body.texts, settings)
        if predictor.labels is None:
            raise HTTPException(400, "this model has no classification head; use /v1/embed")
        return {"predictions": await request.app.state.batcher.run(("predict",), body.texts)}

    @app.post("/v1/embed", response_model=schemas.EmbedResponse, responses=ERRORS, dependencies=guard,
              summary="Pooled sentence vectors for a batch of texts")
    async def embed(body: schemas.EmbedRequest, request: Request):
        _check_texts(body.texts, settings)
        vectors = await request.app.state.batcher.run(("embed", body.pooling, body.role), body.texts)
        return {"embeddings": [v.tolist() for v in vectors], "dim": int(vectors[0].shape[0]), "pooling": body.pooling}


def _add_translate_route(app: FastAPI, translator: ServedTranslator, settings: ServeSettings, guard: list,
                         name: str) -> None:
    @app.post("/v1/translate", response_model=schemas.TranslateResponse, responses=ERRORS, dependencies=guard,
              summary="Translations of a batch of texts (beam search or greedy)")
    async def translate(body: schemas.TranslateRequest, request: Request):
        _check_texts(body.texts, settings)
        options = translator.options(body.beams, body.max_new_tokens, body.length_penalty, body.no_repeat_ngram,
                                     settings.max_beams, settings.max_tokens)
        translations = await request.app.state.batcher.run(("translate", options), body.texts)
        return {"translations": translations, "model": name}


def _add_info_route(app: FastAPI, info: dict, guard: list) -> None:
    @app.get("/v1/model", response_model=schemas.ModelInfo, responses=ERRORS, dependencies=guard,
             summary="Name, task, labels, version and hashes of the served model")
    async def model_info():
        return info


def _add_refusals(app: FastAPI, routes: tuple, message: str) -> None:
    """The other model kind's routes: a 400 saying which routes this model has (not a bare 404)."""
    async def refuse():
        raise HTTPException(400, message)

    for method, path in routes:
        app.add_api_route(path, refuse, methods=[method], include_in_schema=False)


def _add_service_routes(app: FastAPI, metrics: ServeMetrics, guard: list, page_html: str) -> None:
    @app.get("/health", response_model=schemas.Health, summary="Liveness: the process answers")
    async def health():
        return {"status": "ok"}

    @app.get("/ready", response_model=schemas.Health, responses={503: {"model": schemas.Health}},
             summary="Readiness: the model is loaded and warmed up")
    async def ready():
        return JSONResponse({"status": "ready" if metrics.ready else "loading"}, 200 if metrics.ready else 503)

    @app.get("/metrics", response_class=PlainTextResponse, dependencies=guard, responses=ERRORS,
             summary="Prometheus metrics: requests, latency, batch sizes")
    async def prometheus():
        return PlainTextResponse(metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return HTMLResponse(page_html)


async def _warm_up(call, metrics: ServeMetrics) -> None:
    """One small call through the real path (first calls allocate and tune kernels); then /ready says ready."""
    try:
        await call()
    except Exception:
        log.exception("warm-up failed; /ready stays 503")
        return
    metrics.ready = True
    log.info("model warmed up; ready")


def _request_id(request: Request) -> str | None:
    return request.scope.get("state", {}).get("request_id")


def _add_error_handlers(app: FastAPI) -> None:
    """Every error body is JSON with a one-line message and the request id; none carries a traceback."""

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        detail = exc.detail
        if exc.status_code == 400 and detail == "There was an error parsing the body":  # FastAPI's wording
            detail = "the body could not be read as JSON (not UTF-8, nested too deeply, or a number too long)"
        return JSONResponse(error_body(request.url.path, detail, _request_id(request)), exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        raw = exc.errors()  # without "input": it would echo up to a megabyte back
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in raw]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        if "json" not in request.headers.get("content-type", "") and first["loc"] == ["body"]:
            # Kept strict (CSRF: browsers send form posts cross-site without a preflight); say what to send.
            message = "send the body as JSON with the header 'Content-Type: application/json'"
        elif first.get("type") == "json_invalid":
            reason = (raw[0].get("ctx") or {}).get("error", first["msg"])
            example = "a JSON object as in OpenAI's API" if request.url.path.startswith(OPENAI_PATHS) else \
                '{"texts": ["..."]}'
            message = f"the body is not valid JSON ({reason}); send {example}"
        else:
            message = f"{'.'.join(map(str, first['loc'])) or 'request'}: {first['msg']}"
        body = error_body(request.url.path, message, _request_id(request), detail=errors)
        return JSONResponse({**body, "message": message}, 422)

    @app.exception_handler(UserError)
    async def model_cannot(request: Request, exc: UserError):
        return JSONResponse(error_body(request.url.path, str(exc), _request_id(request)), 400)

    @app.exception_handler(BatcherClosed)
    async def closing(request: Request, exc: BatcherClosed):
        return JSONResponse(error_body(request.url.path, str(exc), _request_id(request), kind="server_error"), 503)

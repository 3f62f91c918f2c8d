"""`tuneforge serve`: load the predictor (PyTorch or ONNX) or the causal LM, build the app, run uvicorn until
SIGINT/SIGTERM."""
from __future__ import annotations

import logging.config
from pathlib import Path

from tuneforge.errors import UserError
from tuneforge.serve.app import ServeSettings

LOG_FORMAT = "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"
# Seconds uvicorn waits for in-flight requests after SIGTERM before it closes their connections.
GRACEFUL_SHUTDOWN_S = 30
LOG_LEVELS = ("debug", "info", "warning", "error")
# Texts per forward pass inside one model call. The batcher merges up to --max-batch-size texts into one call; the
# predictor sorts them by length and runs sub-batches of this size, so short texts are not padded to the longest.
# Measured on the 2-core machine (MiniLM-L6, 1 thread, 32 random SST-2 dev sentences per call): 9.3 ms/text in
# sub-batches of 8, 10.1 of 16, 13.6 as one batch of 32; one text per call costs 15.6.
FORWARD_BATCH_SIZE = 8


def serve_threads() -> int:
    """Model threads when --threads is not given: the usable cores (at most 4) minus one for the HTTP side.

    The event loop, JSON and the tokenizer need a core too. Measured on the 2-core machine with another process
    busy on one core: PyTorch with 2 threads fell to ~4 requests/s unbatched (its threads wait on each other),
    with 1 thread it served ~46.
    """
    from tuneforge.export.runtime import default_threads

    return max(1, default_threads() - 1)


def load_generator(model: str, threads: int, precision: str | None = None, spinning: str | None = None):
    """A causal LM (folder, alias, or LoRA adapter folder) as the app serves it (`ServedGenerator`), on the GPU when
    there is one. `serve.load.load_text_generator` loads it (and merges an adapter), as `tuneforge.load` does."""
    import torch

    from tuneforge.serve.generator import ServedGenerator
    from tuneforge.serve.load import load_text_generator

    if spinning is not None:
        raise UserError(f"{model}: spinning is an ONNX Runtime setting and this is a causal LM; drop --spinning.")
    text = load_text_generator(model, precision or "fp32", threads=threads)
    if torch.cuda.is_available():
        text.model.to("cuda")
    return ServedGenerator(text.model, text.tokenizer)


def load_predictor(model: str, threads: int | None = None, batch_size: int = FORWARD_BATCH_SIZE,
                   precision: str | None = None,
                   spinning: str | None = None):
    """The predictor (or, for a causal LM folder, the ServedGenerator) and its resolved folder; a missing folder is
    a one-line UserError."""
    from tuneforge.model.causal import is_causal_lm
    from tuneforge.model.lora import is_adapter_folder
    from tuneforge.model.resolve import resolve_model
    from tuneforge.serve.load import load

    adapter = is_adapter_folder(Path(model).expanduser())  # no config.json: resolve_model would refuse it
    folder = str(Path(model).expanduser()) if adapter else resolve_model(model)
    if adapter or is_causal_lm(folder):
        return load_generator(folder, threads or serve_threads(), precision, spinning), folder
    # load picks onnxruntime for an export folder and rejects --spinning / --precision where they do not apply.
    return load(folder, batch_size=batch_size, precision=precision, threads=threads or serve_threads(),
                spinning=spinning), folder


def check_settings(settings: ServeSettings, port: int) -> None:
    for name in ("max_batch_size", "max_texts", "max_chars", "max_sequences", "max_tokens", "max_prompt_chars",
                 "max_beams"):
        if getattr(settings, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1 (got {getattr(settings, name)}).")
    if settings.max_wait_ms < 0:
        raise UserError(f"--max-wait-ms must be 0 or more (got {settings.max_wait_ms}).")
    if not 0 <= port <= 65535:
        raise UserError(f"--port {port}: use a port between 0 and 65535.")


def check_log_level(level: str) -> str:
    if level.lower() not in LOG_LEVELS:
        raise UserError(f"--log-level {level}: use one of {', '.join(LOG_LEVELS)}.")
    return level.lower()


def log_config(level: str = "info") -> dict:
    """uvicorn's loggers and ours, every line with the request id ('-' outside a request)."""
    handler = {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["request_id"],
               "stream": "ext://sys.stderr"}
    return {"version": 1, "disable_existing_loggers": False,
            "filters": {"request_id": {"()": "tuneforge.serve.middleware.RequestIdFilter"}},
            "formatters": {"plain": {"format": LOG_FORMAT}},
            "handlers": {"default": handler},
            "loggers": {name: {"handlers": ["default"], "level": level.upper(), "propagate": False}
                        for name in ("uvicorn", "uvicorn.error", "tuneforge")}}


def serve(model: str, host: str = "127.0.0.1", port: int = 8000, settings: ServeSettings | None = None,
          threads: int | None = None, log_level: str = "info", forward_batch_size: int = FORWARD_BATCH_SIZE,
          precision: str | None = None, spinning: str | None = None) -> None:
    import uvicorn

    from tuneforge.serve.app import create_app

    settings = settings or ServeSettings()
    check_settings(settings, port)
    log_level = check_log_level(log_level)
    for flag, value in (("--threads", threads), ("--forward-batch-size", forward_batch_size)):
        if value is not None and value < 1:
            raise UserError(f"{flag} must be at least 1 (got {value}).")
    if spinning is not None:  # checked here so that a PyTorch folder gets the same one-line error
        from tuneforge.export.runtime import spinning_mode

        spinning = spinning_mode(spinning, f"--spinning {spinning}")
    threads = threads or serve_threads()
    predictor, folder = load_predictor(model, threads, forward_batch_size, precision, spinning)
    settings.model_path = folder
    if settings.model_name is None and not Path(model).expanduser().exists():
        settings.model_name = model  # an alias (smollm2-135m): its name, not its cache folder's
    app = create_app(predictor, settings)
    logging.config.dictConfig(log_config(log_level))
    if getattr(predictor, "task", None) == "text-generation":
        batching = (f"continuous batching: up to {settings.max_sequences} sequences decoding together, max_tokens "
                    f"up to {settings.max_tokens}" if settings.batching else "continuous batching: off")
    else:
        batching = (f"dynamic batching: up to {settings.max_batch_size} texts, {settings.max_wait_ms:g} ms wait, "
                    f"forward passes of {forward_batch_size}" if settings.batching else "dynamic batching: off")
    logging.getLogger("tuneforge.serve").info(
        "serving %s on http://%s:%d (%s; %d model thread(s); API key %s). Docs: /docs", model, host, port, batching,
        threads,
        "required for /v1/* and /metrics" if settings.api_key else "not set")
    # uvicorn's own access log has no request id; the app logs one line per request instead.
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False, lifespan="on",
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S, log_level=log_level)

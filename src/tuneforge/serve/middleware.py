"""Request hygiene around the app (pure ASGI): request ids, body-size limit, metrics, access log, generic 500s.

Pure ASGI rather than BaseHTTPMiddleware: no extra task per request, and the body limit can stop reading early.
"""
from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid

log = logging.getLogger("tuneforge.serve")
REQUEST_ID = contextvars.ContextVar("request_id", default="-")
_VALID_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # anything else is replaced: ids end up in log lines


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record, for a `%(request_id)s` log format."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


async def send_json(send, status: int, body: dict, headers: list | None = None) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": data})


class RequestContext:
    """Outermost layer: picks the request id, times the request, records metrics, logs, and turns any exception
    that escaped the app into a JSON 500 without details (the traceback goes to the log, with the request id)."""

    def __init__(self, app, metrics, endpoints: set[str] | None = None):
        self.app, self.metrics, self.endpoints = app, metrics, endpoints

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        rid = incoming if _VALID_ID.fullmatch(incoming) else uuid.uuid4().hex
        token = REQUEST_ID.set(rid)
        scope.setdefault("state", {})["request_id"] = rid
        status, start = [500, False], time.perf_counter()

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                status[0], status[1] = message["status"], True
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", rid.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error in %s %s", scope["method"], scope["path"])
            if not status[1]:
                status[0] = 500
                await send_with_id({"type": "http.response.start", "status": 500, "headers": [
                    (b"content-type", b"application/json")]})
                await send_with_id({"type": "http.response.body", "body": json.dumps(
                    {"detail": "internal server error", "request_id": rid}).encode()})
        finally:
            seconds = time.perf_counter() - start
            self.metrics.record_request(self._endpoint(scope["path"]), status[0], seconds)
            log.info("%s %s %d %.1fms", scope["method"], scope["path"], status[0], seconds * 1000)
            REQUEST_ID.reset(token)

    def _endpoint(self, path: str) -> str:
        """The path for known routes; one shared label for the rest, so scanners cannot grow the metrics."""
        return path if self.endpoints is None or path in self.endpoints else "other"


class BodyLimit:
    """413 for request bodies over `max_bytes`, by Content-Length or while reading a chunked body. The body is
    read here (it is small by construction) and replayed to the app."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return await self._too_large(scope, send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return await self._too_large(scope, send)
            if not message.get("more_body"):
                break
        replayed = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replay():
            return replayed.pop() if replayed else await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope, send):
        await send_json(send, 413, {"detail": f"request body too large: the limit is {self.max_bytes} bytes "
                                              "(see --max-texts and --max-chars)",
                                    "request_id": scope.get("state", {}).get("request_id")})

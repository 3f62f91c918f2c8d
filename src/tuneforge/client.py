"""`tuneforge.Client`: a small client of the `tuneforge serve` HTTP API, on the standard library only."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence


class ServerError(RuntimeError):
    """The server answered with an error status; `status`, `detail` and `request_id` say which and why."""

    def __init__(self, status: int, detail, request_id: str | None = None):
        self.status, self.detail, self.request_id = status, detail, request_id
        super().__init__(f"HTTP {status}: {detail}" + (f" (request id {request_id})" if request_id else ""))


class Client:
    """Client("http://127.0.0.1:8000", api_key=None).predict(["great battery life"]) → [{label, probabilities}]."""

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 60.0):
        self.url, self.api_key, self.timeout = url.rstrip("/"), api_key, timeout

    def predict(self, texts: Sequence[str]) -> list[dict]:
        """One {"label", "probabilities"} per text, in order."""
        return self._request("POST", "/v1/predict", {"texts": _texts(texts)})["predictions"]

    def embed(self, texts: Sequence[str], pooling: str = "mean", role: str = "query") -> list[list[float]]:
        """One vector per text (`numpy.asarray(...)` makes it an (N, dim) array). `role` query | passage: the prefix
        a model such as multilingual-e5-small wants (others ignore it)."""
        body = {"texts": _texts(texts), "pooling": pooling, "role": role}
        return self._request("POST", "/v1/embed", body)["embeddings"]

    def translate(self, texts: Sequence[str], beams: int | None = None, max_new_tokens: int | None = None,
                  length_penalty: float | None = None, no_repeat_ngram: int | None = None) -> list[str]:
        """One translation per text, in order, from a served encoder-decoder (`POST /v1/translate`); settings left
        out take the server's defaults (beam 4)."""
        body = {"texts": _texts(texts), "beams": beams, "max_new_tokens": max_new_tokens,
                "length_penalty": length_penalty, "no_repeat_ngram": no_repeat_ngram}
        return self._request("POST", "/v1/translate", {k: v for k, v in body.items() if v is not None})["translations"]

    def health(self) -> dict:
        return self._request("GET", "/health")

    def ready(self) -> bool:
        """True once the model is loaded and warmed up."""
        try:
            return self._request("GET", "/ready").get("status") == "ready"
        except ServerError as exc:
            if exc.status == 503:
                return False
            raise

    def model_info(self) -> dict:
        """Name, labels, version, hashes and manifest of the served model."""
        return self._request("GET", "/v1/model")

    def _request(self, method: str, path: str, body: dict | None = None) -> dict:
        headers = {"Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise _server_error(exc) from None


def _texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("pass a list of texts, e.g. predict([text]); a single string would be split into characters")
    return list(texts)


def _server_error(exc: urllib.error.HTTPError) -> ServerError:
    raw = exc.read()
    try:
        body = json.loads(raw)
    except ValueError:
        body = {"detail": raw.decode("utf-8", "replace")[:500]}
    detail = (body.get("message") or body.get("detail")) if isinstance(body, dict) else body
    request_id = body.get("request_id") if isinstance(body, dict) else None
    return ServerError(exc.code, detail, request_id or exc.headers.get("X-Request-ID"))

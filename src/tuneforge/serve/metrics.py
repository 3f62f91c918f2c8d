"""Server metrics in the Prometheus text format: request counts, latency and batch-size histograms; for causal LMs
also tokens generated, time to first token, decode speed per request and sequences per decode step.

A handful of metric families do not justify a dependency; the exposition format is a few lines of text.
"""
from __future__ import annotations

import bisect
import threading
from collections import defaultdict

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
TOKENS_PER_S_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)


class Histogram:
    """Cumulative buckets + sum + count for one label set."""

    def __init__(self, bounds: tuple[float, ...]):
        self.bounds, self.counts, self.sum, self.count = bounds, [0] * len(bounds), 0.0, 0

    def observe(self, value: float) -> None:
        i = bisect.bisect_left(self.bounds, value)
        if i < len(self.counts):
            self.counts[i] += 1
        self.sum += value
        self.count += 1

    def lines(self, name: str, labels: str) -> list[str]:
        sep = "," if labels else ""
        out, running = [], 0
        for bound, n in zip(self.bounds, self.counts):
            running += n
            out.append(f'{name}_bucket{{{labels}{sep}le="{_num(bound)}"}} {running}')
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.count}')
        braces = f"{{{labels}}}" if labels else ""
        out += [f"{name}_sum{braces} {_num(self.sum)}", f"{name}_count{braces} {self.count}"]
        return out


class ServeMetrics:
    """Thread-safe: the event loop records requests, the batcher's worker thread records batches."""

    def __init__(self):
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str], int] = defaultdict(int)
        self.latency: dict[str, Histogram] = {}
        self.batch_texts = Histogram(BATCH_BUCKETS)
        self.batch_requests = Histogram(BATCH_BUCKETS)
        self.ready = False
        self.generating = False  # a causal LM: the generation families are rendered too
        self.tokens = {"prompt": 0, "completion": 0}
        self.first_token = Histogram(LATENCY_BUCKETS)
        self.tokens_per_s = Histogram(TOKENS_PER_S_BUCKETS)
        self.step_sequences = Histogram(BATCH_BUCKETS)

    def record_request(self, endpoint: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(endpoint, str(status))] += 1
            self.latency.setdefault(endpoint, Histogram(LATENCY_BUCKETS)).observe(seconds)

    def record_batch(self, texts: int, requests: int) -> None:
        with self._lock:
            self.batch_texts.observe(texts)
            self.batch_requests.observe(requests)

    def record_generation(self, prompt_tokens: int, completion_tokens: int, first_token_s: float | None,
                          decode_s: float | None) -> None:
        """One generation that left the engine: its token counts, its time to first token (from arrival, queueing
        included), and its decode speed after the first token (when it made more than one)."""
        with self._lock:
            self.tokens["prompt"] += prompt_tokens
            self.tokens["completion"] += completion_tokens
            if first_token_s is not None:
                self.first_token.observe(first_token_s)
            if decode_s and completion_tokens > 1:
                self.tokens_per_s.observe((completion_tokens - 1) / decode_s)

    def record_step(self, sequences: int) -> None:
        with self._lock:
            self.step_sequences.observe(sequences)

    def _generation_lines(self) -> list[str]:
        lines = ["# HELP tuneforge_tokens_total Tokens read (prompt) and generated (completion).",
                 "# TYPE tuneforge_tokens_total counter"]
        lines += [f'tuneforge_tokens_total{{kind="{kind}"}} {n}' for kind, n in self.tokens.items()]
        return [*lines,
                "# HELP tuneforge_time_to_first_token_seconds From a request's arrival to its first generated token.",
                "# TYPE tuneforge_time_to_first_token_seconds histogram",
                *self.first_token.lines("tuneforge_time_to_first_token_seconds", ""),
                "# HELP tuneforge_decode_tokens_per_second Tokens per second of one generation after its first.",
                "# TYPE tuneforge_decode_tokens_per_second histogram",
                *self.tokens_per_s.lines("tuneforge_decode_tokens_per_second", ""),
                "# HELP tuneforge_decode_batch_sequences Sequences decoded together in one step (continuous batching).",
                "# TYPE tuneforge_decode_batch_sequences histogram",
                *self.step_sequences.lines("tuneforge_decode_batch_sequences", "")]

    def render(self) -> str:
        with self._lock:
            lines = ["# HELP tuneforge_requests_total HTTP requests by endpoint and status code.",
                     "# TYPE tuneforge_requests_total counter"]
            for (endpoint, status), n in sorted(self.requests.items()):
                lines.append(f'tuneforge_requests_total{{endpoint="{_esc(endpoint)}",status="{status}"}} {n}')
            lines += ["# HELP tuneforge_request_duration_seconds Request latency by endpoint.",
                      "# TYPE tuneforge_request_duration_seconds histogram"]
            for endpoint, hist in sorted(self.latency.items()):
                lines += hist.lines("tuneforge_request_duration_seconds", f'endpoint="{_esc(endpoint)}"')
            lines += ["# HELP tuneforge_batch_size_texts Texts per model call (after dynamic batching).",
                      "# TYPE tuneforge_batch_size_texts histogram",
                      *self.batch_texts.lines("tuneforge_batch_size_texts", ""),
                      "# HELP tuneforge_batch_size_requests Requests merged into one model call.",
                      "# TYPE tuneforge_batch_size_requests histogram",
                      *self.batch_requests.lines("tuneforge_batch_size_requests", ""),
                      "# HELP tuneforge_model_ready 1 once the model is loaded and warmed up.",
                      "# TYPE tuneforge_model_ready gauge",
                      f"tuneforge_model_ready {int(self.ready)}"]
            if self.generating:
                lines += self._generation_lines()
        return "\n".join(lines) + "\n"


def _num(x: float) -> str:
    return repr(float(x)) if not float(x).is_integer() else f"{float(x):.1f}"


def _esc(value: str) -> str:
    return value.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")

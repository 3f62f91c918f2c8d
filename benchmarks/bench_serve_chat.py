"""Load test of `tuneforge serve` on a causal LM: 16 concurrent streaming chat clients, continuous batching on, then
one generation at a time (`--no-batching`), on the same prompts.

Usage:  python -m benchmarks.bench_serve_chat [--model smollm2-135m] [--seconds 60] [--clients 16] [--max-tokens 64]
Starts the server as a subprocess on a loopback port for each mode, waits for /ready, runs closed-loop asyncio
clients (each sends one chat request with `stream: true` and `stream_options.include_usage`, reads the server-sent
events to `data: [DONE]`, then sends the next) for a short unmeasured warm-up and then `--seconds`, reads the
server's decode-batch histogram from /metrics, and stops the server with SIGTERM. Throughput counts the completion
tokens (the server's `usage`) of the requests that finished inside the measured window; time to first token is from
sending the request to the first event with text. Greedy decoding (temperature 0), so both modes generate the same
texts. Writes benchmarks/results/serve_chat.json (--out).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
import urllib.request
from types import SimpleNamespace

from benchmarks.common import (
    RESULTS,
    SERVE_PACKAGES,
    add_output_args,
    environment,
    free_port,
    guard_output,
    shown,
    start_server,
    stop_server,
    write_result,
)

PROMPTS = [
    "Write a short poem about the sea.", "Explain what a CPU cache is in two sentences.",
    "Give me three tips for learning a new language.", "What is the capital of France, and why is it famous?",
    "Describe a cat to someone who has never seen one.", "Summarize the plot of Romeo and Juliet.",
    "How do plants make their food?", "Write a haiku about autumn leaves.",
    "What are the benefits of regular exercise?", "Explain recursion to a ten-year-old.",
    "List four uses of a paperclip.", "Why is the sky blue?", "Write a friendly email declining a meeting.",
    "What is the difference between weather and climate?", "Suggest a name for a coffee shop and say why.",
    "How does a bicycle stay upright?",
]
TARGET_RATIO = 3.0  # the target: aggregate tokens/s with batching ≥ 3× one request at a time


async def _chat(reader, writer, port: int, body: bytes) -> tuple[bool, float | None, int]:
    """One streamed chat request on a kept-alive connection: (ok, seconds to the first text event, completion
    tokens from the usage chunk)."""
    sent = time.perf_counter()
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (port, len(body), body))
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    if int(head.split(b" ", 2)[1]) != 200 or b"chunked" not in head.lower():
        length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        await reader.readexactly(int(length.group(1)) if length else 0)
        return False, None, 0
    first, tokens, done, buffer = None, 0, False, b""
    while True:  # to the terminating zero-size chunk, so the kept-alive connection is clean for the next request
        size = int((await reader.readline()).split(b";")[0], 16)
        if size == 0:
            await reader.readline()
            break
        buffer += await reader.readexactly(size)
        await reader.readexactly(2)
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            data = event[len(b"data: "):]
            if data == b"[DONE]":
                done = True
                continue
            chunk = json.loads(data)
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            elif first is None and chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                first = time.perf_counter() - sent
    return done, first, tokens  # a stream that ended without [DONE] is an error


async def _client(i: int, port: int, args, stop_at: float, records: list) -> None:
    """Closed loop until `stop_at`. Records (start, end, ok, ttft, completion tokens)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    k = i
    try:
        while (start := time.perf_counter()) < stop_at:
            body = json.dumps({"model": "bench", "messages": [{"role": "user", "content": PROMPTS[k % len(PROMPTS)]}],
                               "max_tokens": args.max_tokens, "temperature": 0, "stream": True,
                               "stream_options": {"include_usage": True}}).encode()
            k += 1
            try:
                ok, ttft, tokens = await _chat(reader, writer, port, body)
            except (OSError, asyncio.IncompleteReadError, ValueError, KeyError, IndexError):
                ok, ttft, tokens = False, None, 0
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            records.append((start, time.perf_counter(), ok, ttft, tokens))
    finally:
        writer.close()


def scrape(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()

    def value(name: str) -> float:
        match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
        return float(match.group(1)) if match else 0.0

    return {"steps": value("tuneforge_decode_batch_sequences_count"),
            "sequences": value("tuneforge_decode_batch_sequences_sum"),
            "tokens": value('tuneforge_tokens_total{kind="completion"}')}


def percentile(values: list[float], q: float) -> float | None:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 4) if values else None


def run_mode(model: str, batching: bool, args) -> dict:
    """One server, warm-up, then the measured window."""
    port = free_port()
    server_args = SimpleNamespace(max_wait_ms=0, max_batch_size=64, threads=args.threads, forward_batch_size=None)
    extra = ["--max-sequences", str(args.max_sequences), "--max-tokens", str(max(args.max_tokens, 16))]
    proc = start_server(model, port, batching, server_args, extra)
    try:
        records: list = []
        begin = time.perf_counter()
        record_from, stop_at = begin + args.warmup, begin + args.warmup + args.seconds

        async def load():
            async def snapshot(at: float) -> dict:
                await asyncio.sleep(max(0.0, at - time.perf_counter()))
                return await asyncio.to_thread(scrape, port)

            snaps = [asyncio.create_task(snapshot(t)) for t in (record_from, stop_at)]
            await asyncio.gather(*(_client(i, port, args, stop_at, records) for i in range(args.clients)))
            return [await s for s in snaps]

        before, after = asyncio.run(load())
    finally:
        exit_code, log = stop_server(proc)
    window = [r for r in records if record_from <= r[1] <= stop_at]
    done = [r for r in window if r[2]]
    tokens = sum(r[4] for r in done)
    ttft = [r[3] for r in done if r[3] is not None]
    steps = after["steps"] - before["steps"]
    return {"batching": batching, "requests": len(done), "errors": len(window) - len(done),
            "errors_including_warmup_and_drain": sum(1 for r in records if not r[2]),
            "completion_tokens": tokens, "tokens_per_s": round(tokens / args.seconds, 2),
            "tokens_per_s_server_counter": round((after["tokens"] - before["tokens"]) / args.seconds, 2),
            "mean_tokens_per_request": round(tokens / max(1, len(done)), 1),
            "ttft_s": {"p50": percentile(ttft, 0.5), "p95": percentile(ttft, 0.95), "max": percentile(ttft, 1.0)},
            "request_s": {"p50": percentile([r[1] - r[0] for r in done], 0.5),
                          "p95": percentile([r[1] - r[0] for r in done], 0.95)},
            "mean_sequences_per_decode_step": round((after["sequences"] - before["sequences"]) / max(1.0, steps), 2),
            "server_returncode_after_sigterm": exit_code, "server_tracebacks_logged": log.count("Traceback")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m", help="causal LM folder or alias (default smollm2-135m)")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured seconds per mode")
    parser.add_argument("--warmup", type=float, default=5.0, help="unmeasured seconds of load first")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=64, help="max_tokens of every request")
    parser.add_argument("--max-sequences", type=int, default=16, help="the server's --max-sequences")
    parser.add_argument("--threads", type=int, default=None, help="server model threads (default: the server's)")
    add_output_args(parser, RESULTS / "serve_chat.json")
    args = parser.parse_args()
    started = guard_output(args.out, args.allow_dirty)
    from tuneforge.recipes.serve import serve_threads

    print(f"model {args.model}; {args.clients} streaming clients x {args.seconds:g} s per mode; "
          f"max_tokens {args.max_tokens}, greedy")
    modes = {}
    for name, batching in (("batching_on", True), ("batching_off", False)):
        modes[name] = m = run_mode(args.model, batching, args)
        print(f"{name}: {m['tokens_per_s']} tokens/s, {m['requests']} requests, errors {m['errors']}, TTFT p50 "
              f"{m['ttft_s']['p50']} s p95 {m['ttft_s']['p95']} s, {m['mean_sequences_per_decode_step']} seq/step")
    on, off = modes["batching_on"], modes["batching_off"]
    ratio = round(on["tokens_per_s"] / max(off["tokens_per_s"], 1e-9), 2)
    result = {"benchmark": "serve_chat", "model": args.model, "clients": args.clients,
              "seconds_per_mode": args.seconds, "warmup_seconds": args.warmup, "max_tokens": args.max_tokens,
              "prompts": f"{len(PROMPTS)} short English chat prompts, one per request, temperature 0",
              "server": {"max_sequences": args.max_sequences, "threads": args.threads or serve_threads(),
                         "host": "127.0.0.1"},
              "ratios": {"tokens_per_s_on_over_off": ratio,
                         "ttft_p50_on_over_off": round((on["ttft_s"]["p50"] or 0) / (off["ttft_s"]["p50"] or 1), 2)},
              "target": {"tokens_per_s_on_over_off": TARGET_RATIO, "met": ratio >= TARGET_RATIO and
                         on["errors"] == 0 and off["errors"] == 0},
              "modes": modes, "environment": environment(args.threads, SERVE_PACKAGES)}
    path = write_result(args.out, result, started, args.allow_dirty)
    print(json.dumps(result["ratios"]), f"target met: {result['target']['met']}", f"→ {shown(path)}")


if __name__ == "__main__":
    main()

"""Load test of `tuneforge serve`: 32 concurrent clients, dynamic batching on, then off, on real SST-2 sentences.

Usage:  python -m benchmarks.bench_serve [--model runs/bench-sst2-full/run/final] [--seconds 60] [--clients 32]
Starts the server as a subprocess on a loopback port for each mode, waits for /ready, runs a closed-loop asyncio
client (each client sends one SST-2 dev sentence per request and waits for the answer) for a short unmeasured
warm-up and then `--seconds`, reads the server's batch-size histogram from /metrics, and stops the server with
SIGTERM. The client speaks HTTP/1.1 keep-alive over raw asyncio streams: it shares the 2 cores with the server, so
it should cost as little CPU as possible. Default model: runs/bench-sst2-full/run/final, else the newest benchmark
classifier, else a quick 30-step fine-tune (common.serve_model). Writes benchmarks/results/serve_load.json (--out).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import time
import urllib.request
from pathlib import Path

from benchmarks.common import (
    RESULTS,
    SERVE_PACKAGES,
    add_output_args,
    environment,
    free_port,
    guard_output,
    read_sst2,
    serve_model,
    shown,
    start_server,
    stop_server,
    write_result,
)


async def _post(reader, writer, port: int, body: bytes) -> tuple[int, bytes]:
    writer.write(b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (port, len(body), body))
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", head).group(1))
    return status, await reader.readexactly(length)


async def _client(i: int, port: int, texts: list[str], stop_at: float, records: list) -> None:
    """Closed loop until `stop_at`: send, wait for the answer, send the next. Records (start, end, ok)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    k = i * 7919  # each client walks the dev set from its own offset
    try:
        while (start := time.perf_counter()) < stop_at:
            body = json.dumps({"texts": [texts[k % len(texts)]]}).encode()
            k += 1
            try:
                status, raw = await _post(reader, writer, port, body)
                ok = status == 200 and len(json.loads(raw)["predictions"]) == 1
            except (OSError, asyncio.IncompleteReadError, ValueError, KeyError, AttributeError):
                ok = False
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            records.append((start, time.perf_counter(), ok))
    finally:
        writer.close()


def scrape_batches(port: int) -> tuple[float, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    values = [float(re.search(rf"^tuneforge_batch_size_texts_{k} (\S+)$", text, re.MULTILINE).group(1))
              for k in ("sum", "count")]
    return values[0], values[1]


def cpu_seconds(server_pid: int) -> dict:
    """CPU seconds so far: the server process, this process (the load client), all other processes, and the
    time the hypervisor gave to other machines (steal), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    busy = sum(fields[i] for i in (0, 1, 2, 5, 6)) / tick  # user nice system irq softirq
    stat = Path(f"/proc/{server_pid}/stat").read_text().rsplit(")", 1)[1].split()
    server = (int(stat[11]) + int(stat[12])) / tick  # utime stime
    own = sum(os.times()[:2])
    return {"server": server, "load_client": own, "other_processes": busy - server - own, "steal": fields[7] / tick}


def _snapshot_at(when: float, port: int, pid: int) -> tuple[float, float, dict]:
    time.sleep(max(0.0, when - time.perf_counter()))
    return (*scrape_batches(port), cpu_seconds(pid))


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def run_mode(model: str, batching: bool, texts: list[str], args) -> dict:
    """One server, warm-up, then the measured window: requests that finished inside it count."""
    port = free_port()
    proc = start_server(model, port, batching, args)
    try:
        records: list = []
        begin = time.perf_counter()
        record_from, stop_at = begin + args.warmup, begin + args.warmup + args.seconds

        async def load():
            snapshots = [asyncio.create_task(asyncio.to_thread(_snapshot_at, t, port, proc.pid))
                         for t in (record_from, stop_at)]
            await asyncio.gather(*(_client(i, port, texts, stop_at, records) for i in range(args.clients)))
            return [await s for s in snapshots]

        (sum0, count0, cpu0), (sum1, count1, cpu1) = asyncio.run(load())
    finally:
        exit_code, log = stop_server(proc)
        tracebacks = log.count("Traceback")
    window = [(end - start, ok) for start, end, ok in records if record_from <= end <= stop_at]
    lat = sorted(d * 1000 for d, ok in window if ok)
    n = len(lat)
    return {"batching": batching, "requests": n, "errors": sum(1 for _, ok in window if not ok),
            "errors_including_warmup_and_drain": sum(1 for *_, ok in records if not ok),
            "requests_per_s": round(n / args.seconds, 1),
            "latency_ms": {"p50": round(percentile(lat, 0.50), 1), "p95": round(percentile(lat, 0.95), 1),
                           "p99": round(percentile(lat, 0.99), 1), "mean": round(sum(lat) / max(1, n), 1),
                           "max": round(lat[-1], 1) if lat else None},
            "model_calls": int(count1 - count0),
            "mean_texts_per_model_call": round((sum1 - sum0) / max(1.0, count1 - count0), 2),
            "server_returncode_after_sigterm": exit_code, "server_tracebacks_logged": tracebacks,
            # CPU used in the window, in cores: the server, this load client, everything else, and steal
            "cpu_cores_used": {k: round((cpu1[k] - cpu0[k]) / args.seconds, 2) for k in cpu0}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="classifier folder (default: the best benchmark run)")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured seconds per mode")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds of load first")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="server model threads (default: the server's)")
    parser.add_argument("--forward-batch-size", type=int, default=None, help="(default: the server's)")
    add_output_args(parser, RESULTS / "serve_load.json")
    args = parser.parse_args()
    started = guard_output(args.out, args.allow_dirty)
    from tuneforge.recipes.serve import FORWARD_BATCH_SIZE, serve_threads

    model = serve_model(args.model)
    texts = read_sst2("dev")[0]
    print(f"model {model}; {len(texts)} SST-2 dev sentences; {args.clients} clients x {args.seconds:g} s per mode")
    modes = {}
    for name, batching in (("batching_on", True), ("batching_off", False)):
        modes[name] = run_mode(model, batching, texts, args)
        m = modes[name]
        print(f"{name}: {m['requests_per_s']} req/s, p50 {m['latency_ms']['p50']} ms, p95 {m['latency_ms']['p95']} ms, "
              f"p99 {m['latency_ms']['p99']} ms, errors {m['errors']}, {m['mean_texts_per_model_call']} texts/call, "
              f"cores used {m['cpu_cores_used']}")
    on, off = modes["batching_on"], modes["batching_off"]
    result = {"benchmark": "serve_load", "model": model,
              "data": f"SST-2 dev ({len(texts)} sentences), one sentence per request",
              "clients": args.clients, "seconds_per_mode": args.seconds, "warmup_seconds": args.warmup,
              "server": {"max_batch_size": args.max_batch_size, "max_wait_ms": args.max_wait_ms,
                         "threads": args.threads or serve_threads(), "host": "127.0.0.1",
                         "forward_batch_size": args.forward_batch_size or FORWARD_BATCH_SIZE,
                         "backend": "onnx" if (Path(model) / "model.onnx").is_file() else "pytorch"},
              "ratios": {"throughput_on_over_off": round(on["requests_per_s"] / max(off["requests_per_s"], 1e-9), 2),
                         "p50_latency_on_over_off": round(on["latency_ms"]["p50"] / off["latency_ms"]["p50"], 2),
                         "p99_latency_on_over_off": round(on["latency_ms"]["p99"] / off["latency_ms"]["p99"], 2)},
              "modes": modes, "environment": environment(args.threads, SERVE_PACKAGES)}
    path = write_result(args.out, result, started, args.allow_dirty)
    print(json.dumps(result["ratios"]), f"→ {shown(path)}")


if __name__ == "__main__":
    main()

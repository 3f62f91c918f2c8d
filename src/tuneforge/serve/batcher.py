"""Dynamic batching: concurrent requests for the same kind of call are merged into one model call.

One worker thread owns the model. Callers submit (key, items) and get a future; the worker takes the oldest
job, waits up to `max_wait_s` for more jobs with the same key (until `max_batch_size` items), calls
`fn(key, items)` once, and hands each caller its own slice of the results, in order. Model calls never run on the
event loop, and never two at a time.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import queue
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

log = logging.getLogger("tuneforge.serve")
_STOP = object()


@dataclass(eq=False)  # identity: two jobs with equal texts are still two callers
class _Job:
    key: Hashable
    items: Sequence
    future: Future = field(default_factory=Future)


class BatcherClosed(RuntimeError):
    """Raised to callers that submit after shutdown began."""


class DynamicBatcher:
    """`fn(key, items) -> list` with len(result) == len(items); `on_batch(n_items, n_jobs)` observes each call.

    enabled=False runs every job alone (the baseline the load test compares against). max_wait_s=0 still merges
    the jobs that are already queued, without waiting for more.
    """

    def __init__(self, fn: Callable[[Hashable, list], list], max_batch_size: int = 64, max_wait_s: float = 0.005,
                 enabled: bool = True, on_batch: Callable[[int, int], None] | None = None):
        if max_batch_size < 1 or max_wait_s < 0:
            raise ValueError("max_batch_size must be >= 1 and max_wait_s >= 0")
        self.fn, self.max_batch_size, self.max_wait_s = fn, max_batch_size, max_wait_s
        self.enabled, self.on_batch = enabled, on_batch
        self._queue: queue.Queue = queue.Queue()
        self._held: collections.deque[_Job] = collections.deque()  # taken from the queue, other key: next batch
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="tuneforge-batcher", daemon=True)
        self._thread.start()

    def submit(self, key: Hashable, items: Sequence) -> Future:
        """A future with the results for `items`, in order (or the exception their model call raised)."""
        job = _Job(key, list(items))
        with self._lock:  # no job may slip in behind the stop marker
            if self._closed:
                raise BatcherClosed("the server is shutting down")
            self._queue.put(job)
        return job.future

    async def run(self, key: Hashable, items: Sequence) -> list:
        """Await the results from an event loop."""
        return await asyncio.wrap_future(self.submit(key, items))

    def close(self, timeout: float | None = None) -> None:
        """Stop taking jobs, finish every job already submitted, then stop the worker."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        self._thread.join(timeout)

    # --- worker thread ---------------------------------------------------------------------------------------
    def _loop(self) -> None:
        stopping = False
        while not (stopping and not self._held):
            first = self._held.popleft() if self._held else self._queue.get()
            if first is _STOP:
                stopping = True
                continue
            jobs, stopping = self._gather(first, stopping)
            self._execute(jobs)

    def _gather(self, first: _Job, stopping: bool) -> tuple[list[_Job], bool]:
        """The first job plus queued jobs with its key, up to max_batch_size items or until max_wait_s passes."""
        jobs, size = [first], len(first.items)
        if not self.enabled:
            return jobs, stopping
        for job in list(self._held):  # held jobs are older than anything still queued
            if job.key == first.key and size + len(job.items) <= self.max_batch_size:
                self._held.remove(job)
                jobs.append(job)
                size += len(job.items)
        deadline = time.monotonic() + self.max_wait_s
        while size < self.max_batch_size and not stopping:
            try:
                job = self._queue.get(timeout=max(0.0, deadline - time.monotonic())) \
                    if self.max_wait_s else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is _STOP:
                stopping = True
            elif job.key != first.key or size + len(job.items) > self.max_batch_size:
                self._held.append(job)
                if job.key == first.key:
                    break  # the batch is as full as it gets
            else:
                jobs.append(job)
                size += len(job.items)
        return jobs, stopping

    def _execute(self, jobs: list[_Job]) -> None:
        items = [x for job in jobs for x in job.items]
        if self.on_batch:
            try:
                self.on_batch(len(items), len(jobs))
            except Exception:
                log.exception("batch observer failed")
        try:
            results = self.fn(jobs[0].key, items)
            if len(results) != len(items):
                raise RuntimeError(f"batch function returned {len(results)} results for {len(items)} items")
        except Exception as exc:  # noqa: BLE001 - handed to the callers, never lost
            if len(jobs) == 1:
                _settle(jobs[0].future, exc=exc)
            else:  # one bad request must not fail its neighbours: retry each alone, so only its caller sees it
                for job in jobs:
                    self._execute([job])
            return
        start = 0
        for job in jobs:
            _settle(job.future, result=list(results[start:start + len(job.items)]))
            start += len(job.items)


def _settle(future: Future, result=None, exc: BaseException | None = None) -> None:
    if future.set_running_or_notify_cancel():
        future.set_exception(exc) if exc is not None else future.set_result(result)

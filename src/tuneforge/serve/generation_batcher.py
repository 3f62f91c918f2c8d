"""Continuous batching for text generation: one worker thread drives a `tuneforge.generate.engine.Engine`, and every
request in flight decodes in the same steps.

Between two decode steps the worker takes what the event loop sent it (new requests, cancellations), adds new
requests to the engine while it has room (`max_active`; the rest wait in order), runs one `engine.step()` and hands
each event to its request's asyncio queue with `call_soon_threadsafe`. Model calls never run on the event loop,
and never two at a time. With `enabled=False` one request decodes at a time (the baseline the benchmark compares
against). `close()` stops taking requests, lets those in flight finish, and cancels what is left after `timeout`.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from tuneforge.serve.batcher import BatcherClosed

log = logging.getLogger("tuneforge.serve")
_STOP, _CANCEL_ALL = object(), object()


@dataclass
class Ended:
    """The last event of a generation the engine never finished itself (cancelled before or while decoding)."""

    seq_id: int | None
    text_delta: str = ""
    token_ids: list = field(default_factory=list)
    finished: bool = True
    finish_reason: str = "cancelled"


@dataclass(eq=False)  # identity: two requests with the same prompt are still two callers
class Generation:
    """One request's handle. `events` is filled from the worker thread; only the event loop reads it."""

    prompt_ids: list[int]
    settings: object
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    submitted: float = field(default_factory=time.perf_counter)
    seq_id: int | None = None  # set by the worker once the engine took it
    first_token_at: float | None = None
    completion_tokens: int = 0
    ended: bool = False  # the consumer saw the last event (or an error): nothing to cancel


class GenerationBatcher:
    """`engine`: add(prompt_ids, settings) -> seq_id, step() -> events, cancel(seq_id). `on_step(n)` sees the
    number of sequences in each decode step; `on_done(generation)` each generation that left the engine
    (finished or cancelled), for the metrics."""

    def __init__(self, engine, max_active: int = 16, enabled: bool = True,
                 on_step: Callable[[int], None] | None = None, on_done: Callable[[Generation], None] | None = None):
        if max_active < 1:
            raise ValueError("max_active must be >= 1")
        self.engine, self.max_active = engine, max_active if enabled else 1
        self.on_step, self.on_done = on_step, on_done
        self._inbox: queue.Queue = queue.Queue()
        self._pending: collections.deque[Generation] = collections.deque()
        self._active: dict[int, Generation] = {}
        self._closed = self._stopping = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="tuneforge-generation", daemon=True)
        self._thread.start()

    # --- event loop side --------------------------------------------------------------------------------------
    def submit(self, prompt_ids: list[int], settings) -> Generation:
        """Queue a generation; call from the event loop. BatcherClosed once shutdown began."""
        gen = Generation(list(prompt_ids), settings, asyncio.get_running_loop())
        with self._lock:  # nothing may slip in behind the stop marker
            if self._closed:
                raise BatcherClosed("the server is shutting down")
            self._inbox.put(("add", gen))
        return gen

    def cancel(self, gen: Generation) -> None:
        """Stop a generation (its client went away). Safe to call twice, or after it finished."""
        if not gen.ended:
            self._inbox.put(("cancel", gen))

    async def stream(self, gen: Generation) -> AsyncIterator:
        """The events of `gen` until the last one (finished=True). Leaving early (the consumer was cancelled, or
        stopped reading) cancels the generation in the engine."""
        try:
            while True:
                item = await gen.events.get()
                if isinstance(item, BaseException):
                    gen.ended = True
                    raise item
                gen.ended = gen.ended or item.finished
                yield item
                if item.finished:
                    return
        finally:
            if not gen.ended:
                gen.ended = True
                self._inbox.put(("cancel", gen))

    def close(self, timeout: float | None = None) -> None:
        """Refuse new requests, let the ones in flight finish; after `timeout` seconds cancel what is left."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._inbox.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("generations still running after %s s of shutdown: cancelling them", timeout)
            self._inbox.put(_CANCEL_ALL)
            self._thread.join()

    # --- worker thread ----------------------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            idle = not self._active and not self._pending
            if idle and self._stopping:
                return
            self._take_messages(block=idle)
            self._admit()
            if self._active:
                self._step()

    def _take_messages(self, block: bool) -> None:
        message = self._inbox.get() if block else None
        while True:
            if message is _STOP:
                self._stopping = True
            elif message is _CANCEL_ALL:
                for gen in [*self._pending, *self._active.values()]:
                    self._cancel(gen)
            elif message is not None:
                kind, gen = message
                self._pending.append(gen) if kind == "add" else self._cancel(gen)
            try:
                message = self._inbox.get_nowait()
            except queue.Empty:
                return

    def _cancel(self, gen: Generation) -> None:
        if gen in self._pending:
            self._pending.remove(gen)
        elif gen.seq_id is not None and self._active.get(gen.seq_id) is gen:
            del self._active[gen.seq_id]
            try:
                self.engine.cancel(gen.seq_id)
            except Exception:  # noqa: BLE001 - a failed cancel must not stop the other generations
                log.exception("engine.cancel(%s) failed", gen.seq_id)
            self._finished(gen)  # its tokens were generated: they count
        else:
            return  # finished already, or cancelled twice
        _deliver(gen, Ended(gen.seq_id))

    def _admit(self) -> None:
        """New requests join the running batch at this step (continuous batching)."""
        while self._pending and len(self._active) < self.max_active:
            gen = self._pending.popleft()
            try:
                gen.seq_id = self.engine.add(gen.prompt_ids, gen.settings)
            except Exception as exc:  # noqa: BLE001 - handed to its caller, never lost
                _deliver(gen, exc)
                continue
            self._active[gen.seq_id] = gen

    def _step(self) -> None:
        if self.on_step:
            try:
                self.on_step(len(self._active))
            except Exception:
                log.exception("step observer failed")
        try:
            events = self.engine.step()
        except Exception as exc:  # noqa: BLE001 - every caller in the batch learns of it; the server keeps going
            log.exception("a decode step failed; failing the %d generation(s) in it", len(self._active))
            for seq_id, gen in list(self._active.items()):
                del self._active[seq_id]
                try:
                    self.engine.cancel(seq_id)
                except Exception:  # noqa: BLE001
                    pass
                _deliver(gen, exc)
            return
        now = time.perf_counter()
        for event in events:
            gen = self._active.get(event.seq_id)
            if gen is None:  # cancelled between the step's start and its end
                continue
            if event.token_ids:
                gen.first_token_at = gen.first_token_at or now
                gen.completion_tokens += len(event.token_ids)
            _deliver(gen, event)
            if event.finished:
                del self._active[event.seq_id]
                self._finished(gen)

    def _finished(self, gen: Generation) -> None:
        if self.on_done:
            try:
                self.on_done(gen)
            except Exception:
                log.exception("generation observer failed")


def _deliver(gen: Generation, item) -> None:
    try:
        gen.loop.call_soon_threadsafe(gen.events.put_nowait, item)
    except RuntimeError:  # the event loop is gone (the app stopped): nobody is waiting
        pass

"""The generation batcher with a fake engine: continuous batching, the slot cap, batching off, cancellation,
errors reaching their callers only, and the drain at shutdown."""
from __future__ import annotations

import asyncio
import threading
import time
from types import SimpleNamespace

import pytest
from serve_helpers import FakeEngine

from tuneforge.serve.batcher import BatcherClosed
from tuneforge.serve.generation_batcher import GenerationBatcher


def settings(max_new_tokens: int = 4, stop: tuple = ()):
    return SimpleNamespace(max_new_tokens=max_new_tokens, stop=stop)


async def collect(batcher, gen):
    return [(e.text_delta, list(e.token_ids), e.finished, e.finish_reason) async for e in batcher.stream(gen)]


def test_concurrent_generations_decode_in_the_same_steps_and_each_gets_its_own_events():
    engine, steps = FakeEngine(step_s=0.002), []
    batcher = GenerationBatcher(engine, max_active=8, on_step=steps.append)

    async def both():
        return await asyncio.gather(collect(batcher, batcher.submit([1, 2], settings(3))),
                                    collect(batcher, batcher.submit([3], settings(20))))

    short, long = asyncio.run(both())
    batcher.close()
    assert [t for t, *_ in short] == ["Hello", ",", " world"] and short[-1][2:] == (True, "length")
    assert "".join(t for t, *_ in long) == "".join(FakeEngine.WORDS) and long[-1][2:] == (True, "stop")
    assert engine.max_active == 2 and max(steps) == 2  # decoded together
    assert engine.added == [([1, 2], engine.added[0][1]), ([3], engine.added[1][1])]


def test_new_requests_join_between_steps_up_to_max_active():
    engine = FakeEngine(step_s=0.005)
    batcher = GenerationBatcher(engine, max_active=2)

    async def three():
        first = batcher.submit([1], settings(8))
        second = batcher.submit([2], settings(2))
        task = asyncio.gather(collect(batcher, first), collect(batcher, second))
        await asyncio.sleep(0.02)  # the first two are decoding
        third = batcher.submit([3], settings(2))
        return (*await task, await collect(batcher, third))

    first, second, third = asyncio.run(three())
    batcher.close()
    assert engine.max_active == 2  # the third waited for a free slot...
    assert len(third) == 2 and len(first) == 8
    assert engine.steps < 8 + 2  # ...and decoded beside the first instead of after it (continuous batching)


def test_batching_off_decodes_one_generation_at_a_time():
    engine = FakeEngine()
    batcher = GenerationBatcher(engine, max_active=8, enabled=False)

    async def many():
        return await asyncio.gather(*(collect(batcher, batcher.submit([i], settings(3))) for i in range(4)))

    assert all(len(events) == 3 for events in asyncio.run(many()))
    batcher.close()
    assert engine.max_active == 1 and engine.steps == 12


def test_leaving_the_stream_early_cancels_the_generation_in_the_engine():
    engine = FakeEngine(step_s=0.005)
    batcher = GenerationBatcher(engine)

    async def leave_after_two():
        gen = batcher.submit([1], settings(1000))
        seen = 0
        async for _ in batcher.stream(gen):
            seen += 1
            if seen == 2:
                break
        return gen

    gen = asyncio.run(leave_after_two())
    deadline = time.monotonic() + 5
    while gen.seq_id not in engine.cancelled:
        assert time.monotonic() < deadline, "the engine never saw the cancel"
        time.sleep(0.01)
    batcher.close()
    assert engine.active == 0 and engine.steps < 100


def test_a_cancelled_consumer_task_cancels_and_a_queued_one_never_reaches_the_engine():
    engine = FakeEngine()
    engine.gate.clear()  # steps block: the first generation holds the only slot
    batcher = GenerationBatcher(engine, max_active=1)

    async def scenario():
        running, queued = batcher.submit([1], settings(50)), batcher.submit([2], settings(50))
        tasks = [asyncio.create_task(collect(batcher, g)) for g in (running, queued)]
        await asyncio.sleep(0.05)
        for task in tasks:
            task.cancel()  # what Starlette does to a streaming response when its client disconnects
        await asyncio.gather(*tasks, return_exceptions=True)
        return running

    running = asyncio.run(scenario())
    engine.gate.set()
    batcher.close()
    assert engine.cancelled == [running.seq_id] and [ids for ids, _ in engine.added] == [[1]]


def test_an_add_error_reaches_only_its_caller_and_a_step_error_fails_the_batch_not_the_server():
    engine = FakeEngine(step_s=0.002)
    batcher = GenerationBatcher(engine)

    async def scenario():
        bad = collect(batcher, batcher.submit([1], settings(3, stop=("refuse",))))
        good = collect(batcher, batcher.submit([2], settings(3)))
        results = await asyncio.gather(bad, good, return_exceptions=True)
        engine.fail_next_step = RuntimeError("step broke")
        broken = await asyncio.gather(collect(batcher, batcher.submit([3], settings(3))), return_exceptions=True)
        return results, broken[0], await collect(batcher, batcher.submit([4], settings(2)))

    (bad, good), broken, after = asyncio.run(scenario())
    batcher.close()
    assert isinstance(bad, ValueError) and len(good) == 3
    assert isinstance(broken, RuntimeError) and "step broke" in str(broken)
    assert len(after) == 2  # the worker kept going


def test_close_finishes_generations_in_flight_then_refuses_new_ones():
    engine = FakeEngine(step_s=0.005)
    batcher = GenerationBatcher(engine)

    async def scenario():
        task = asyncio.create_task(collect(batcher, batcher.submit([1], settings(6))))
        await asyncio.sleep(0.01)
        closer = threading.Thread(target=batcher.close)
        closer.start()
        await asyncio.sleep(0.01)
        with pytest.raises(BatcherClosed):
            batcher.submit([2], settings(2))
        events = await task
        await asyncio.to_thread(closer.join, 5)
        return events, closer.is_alive()

    events, closer_alive = asyncio.run(scenario())
    assert len(events) == 6 and events[-1][3] == "length" and not closer_alive and engine.cancelled == []


def test_close_with_a_timeout_cancels_what_is_left():
    engine = FakeEngine(step_s=0.01, endless=True)  # never ends by itself, however slow the machine
    batcher = GenerationBatcher(engine)

    async def scenario():
        task = asyncio.create_task(collect(batcher, batcher.submit([1], settings(10_000))))
        await asyncio.sleep(0.03)
        await asyncio.to_thread(batcher.close, 0.05)
        return await task

    events = asyncio.run(scenario())
    assert events[-1][2:] == (True, "cancelled") and engine.cancelled == [0] and engine.active == 0

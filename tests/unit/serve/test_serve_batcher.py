"""The dynamic batcher with a fake model function: merging, size cap, wait, keys, errors, order, drain."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest

from tuneforge.serve.batcher import BatcherClosed, DynamicBatcher


class FakeModel:
    """Records every call; a call containing "block" waits for `release`; "bad" items raise."""

    def __init__(self):
        self.calls: list[tuple] = []
        self.entered, self.release = threading.Event(), threading.Event()

    def __call__(self, key, items):
        self.calls.append((key, list(items)))
        if "block" in items:
            self.entered.set()
            assert self.release.wait(10)
        if "bad" in items:
            raise ValueError("bad item")
        return [f"{key}:{x}" for x in items]


@pytest.fixture
def model():
    return FakeModel()


def _blocked(batcher, model):
    """Occupy the worker with a blocking call, so the next jobs queue up behind it."""
    first = batcher.submit("k", ["block"])
    assert model.entered.wait(5)
    return first


def test_queued_requests_merge_into_one_call_and_each_caller_gets_its_slice_in_order(model):
    batcher = DynamicBatcher(model, max_batch_size=64, max_wait_s=0.0)
    blocker = _blocked(batcher, model)
    futures = [batcher.submit("k", [f"r{i}a", f"r{i}b"]) for i in range(5)]
    model.release.set()
    assert blocker.result(5) == ["k:block"]
    assert [f.result(5) for f in futures] == [[f"k:r{i}a", f"k:r{i}b"] for i in range(5)]
    assert model.calls[1] == ("k", [x for i in range(5) for x in (f"r{i}a", f"r{i}b")])  # one call, submit order
    assert len(model.calls) == 2
    batcher.close()


def test_max_batch_size_is_respected(model):
    batcher = DynamicBatcher(model, max_batch_size=4, max_wait_s=0.0)
    _blocked(batcher, model)
    futures = [batcher.submit("k", [str(i)]) for i in range(10)]
    big = batcher.submit("k", [f"big{i}" for i in range(6)])  # larger than the cap: runs alone, never split
    model.release.set()
    assert [f.result(5) for f in futures] == [[f"k:{i}"] for i in range(10)]
    assert big.result(5) == [f"k:big{i}" for i in range(6)]
    sizes = [len(items) for _, items in model.calls[1:]]
    assert sizes == [4, 4, 2, 6]
    batcher.close()


def test_waits_up_to_max_wait_for_more_requests(model):
    batcher = DynamicBatcher(model, max_batch_size=64, max_wait_s=0.3)
    first = batcher.submit("k", ["a"])
    time.sleep(0.05)  # well inside the wait: must join the first request's call
    second = batcher.submit("k", ["b"])
    assert first.result(5) == ["k:a"] and second.result(5) == ["k:b"]
    assert model.calls == [("k", ["a", "b"])]
    batcher.close()


def test_a_lone_request_waits_at_most_max_wait(model):
    batcher = DynamicBatcher(model, max_batch_size=64, max_wait_s=0.1)
    start = time.monotonic()
    assert batcher.submit("k", ["a"]).result(5) == ["k:a"]
    elapsed = time.monotonic() - start
    assert 0.09 <= elapsed < 1.0, elapsed
    batcher.close()


def test_a_full_batch_does_not_wait(model):
    batcher = DynamicBatcher(model, max_batch_size=2, max_wait_s=5.0)
    start = time.monotonic()
    assert batcher.submit("k", ["a", "b"]).result(5) == ["k:a", "k:b"]
    assert time.monotonic() - start < 2.0
    batcher.close()


def test_different_keys_never_share_a_call(model):
    batcher = DynamicBatcher(model, max_batch_size=64, max_wait_s=0.0)
    _blocked(batcher, model)
    futures = [batcher.submit(key, [str(i)]) for i, key in enumerate(["p", "e", "p", "e", "p"])]
    model.release.set()
    assert [f.result(5) for f in futures] == [["p:0"], ["e:1"], ["p:2"], ["e:3"], ["p:4"]]
    assert model.calls[1:] == [("p", ["0", "2", "4"]), ("e", ["1", "3"])]
    batcher.close()


def test_an_error_reaches_only_the_caller_whose_texts_caused_it(model):
    batcher = DynamicBatcher(model, max_batch_size=64, max_wait_s=0.0)
    _blocked(batcher, model)
    good1, bad, good2 = (batcher.submit("k", items) for items in (["a"], ["x", "bad"], ["c"]))
    model.release.set()
    with pytest.raises(ValueError, match="bad item"):
        bad.result(5)
    assert good1.result(5) == ["k:a"] and good2.result(5) == ["k:c"]
    # merged call failed, then each request alone: only the bad one failed again
    assert model.calls[1:] == [("k", ["a", "x", "bad", "c"]), ("k", ["a"]), ("k", ["x", "bad"]), ("k", ["c"])]
    batcher.close()


def test_wrong_result_count_is_an_error_not_a_misaligned_answer():
    batcher = DynamicBatcher(lambda key, items: items[:-1], max_wait_s=0.0)
    with pytest.raises(RuntimeError, match="returned 1 results for 2 items"):
        batcher.submit("k", ["a", "b"]).result(5)
    batcher.close()


def test_disabled_batching_runs_every_request_alone(model):
    batcher = DynamicBatcher(model, max_batch_size=64, max_wait_s=0.0, enabled=False)
    _blocked(batcher, model)
    futures = [batcher.submit("k", [str(i)]) for i in range(4)]
    model.release.set()
    assert [f.result(5) for f in futures] == [[f"k:{i}"] for i in range(4)]
    assert model.calls[1:] == [("k", [str(i)]) for i in range(4)]
    batcher.close()


def test_close_finishes_queued_work_then_refuses_new_work(model):
    batcher = DynamicBatcher(model, max_batch_size=2, max_wait_s=0.0)
    _blocked(batcher, model)
    futures = [batcher.submit("k", [str(i)]) for i in range(5)]
    closer = threading.Thread(target=batcher.close)
    closer.start()
    time.sleep(0.05)
    with pytest.raises(BatcherClosed):
        batcher.submit("k", ["late"])
    model.release.set()
    closer.join(5)
    assert not closer.is_alive()
    assert [f.result(0) for f in futures] == [[f"k:{i}"] for i in range(5)]


def test_observer_sees_each_call_and_async_callers_are_merged(model):
    seen = []
    batcher = DynamicBatcher(model, max_batch_size=64, max_wait_s=0.3, on_batch=lambda n, r: seen.append((n, r)))

    async def many():
        return await asyncio.gather(*(batcher.run("k", [str(i)]) for i in range(8)))

    assert asyncio.run(many()) == [[f"k:{i}"] for i in range(8)]
    assert seen == [(8, 8)] and len(model.calls) == 1
    batcher.close()

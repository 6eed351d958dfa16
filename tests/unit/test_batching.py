"""The in-process micro-batcher: batches what arrives together, answers each caller, sheds overload."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from bento.batching import MicroBatcher, Overloaded


def run(coro):
    return asyncio.run(coro)


def test_lone_request_is_scored_at_once_and_results_map_back():
    batcher = MicroBatcher(lambda xs: [x * 10 for x in xs], max_batch_size=8)

    async def main():
        t0 = time.perf_counter()
        one = await batcher.submit(1)
        elapsed = time.perf_counter() - t0
        many = await asyncio.gather(*(batcher.submit(i) for i in range(20)))
        return one, elapsed, many

    one, elapsed, many = run(main())
    assert one == 10 and elapsed < 0.5
    assert many == [i * 10 for i in range(20)]
    assert batcher.stats.batches >= 3  # 20 items at most 8 per batch
    assert batcher.stats.largest_batch <= 8
    batcher.close()


def test_requests_arriving_during_a_batch_form_the_next_one():
    sizes: list[int] = []
    gate = threading.Event()

    def slow(xs):
        sizes.append(len(xs))
        gate.wait(5)  # the first batch blocks until every other request is queued
        return xs

    batcher = MicroBatcher(slow, max_batch_size=64, max_queue_delay_ms=10_000)

    async def main():
        first = asyncio.ensure_future(batcher.submit(0))
        await asyncio.sleep(0.05)  # the first (lone) request is being scored
        rest = [asyncio.ensure_future(batcher.submit(i)) for i in range(1, 31)]
        await asyncio.sleep(0.05)
        gate.set()
        return await first, await asyncio.gather(*rest)

    first, rest = run(main())
    assert first == 0 and rest == list(range(1, 31))
    assert sizes == [1, 30]
    batcher.close()


def test_an_exception_fails_every_caller_of_that_batch_only():
    def flaky(xs):
        if -1 in xs:
            raise RuntimeError("boom")
        return xs

    batcher = MicroBatcher(flaky, max_batch_size=1)

    async def main():
        bad = await asyncio.gather(batcher.submit(-1), return_exceptions=True)
        good = await batcher.submit(5)
        return bad, good

    bad, good = run(main())
    assert isinstance(bad[0], RuntimeError) and good == 5
    batcher.close()


def test_overload_is_refused_at_once_and_the_queue_recovers():
    """While the oldest queued request has waited over the limit, new ones are refused immediately."""
    release = threading.Event()

    def stuck(xs):
        release.wait(5)
        return xs

    batcher = MicroBatcher(stuck, max_batch_size=4, max_queue_delay_ms=50, max_queue=100)

    async def main():
        in_flight = asyncio.ensure_future(batcher.submit(0))  # occupies the scoring thread
        await asyncio.sleep(0.02)
        queued = [asyncio.ensure_future(batcher.submit(i)) for i in range(1, 5)]
        await asyncio.sleep(0.1)  # the oldest queued one has now waited > 50 ms
        t0 = time.perf_counter()
        with pytest.raises(Overloaded) as refused:
            await batcher.submit(99)
        refused_after = time.perf_counter() - t0
        release.set()
        done = await asyncio.gather(in_flight, *queued)
        again = await batcher.submit(7)  # the queue drained: accepted again
        return refused.value, refused_after, done, again

    refused, refused_after, done, again = run(main())
    assert refused_after < 0.05 and refused.retry_after_s >= 1 and "waited" in refused.reason
    assert done == [0, 1, 2, 3, 4] and again == 7
    assert batcher.stats.shed == 1
    batcher.close()


def test_a_full_queue_is_refused():
    release = threading.Event()
    batcher = MicroBatcher(lambda xs: (release.wait(5), xs)[1], max_batch_size=1, max_queue=2)

    async def main():
        futures = [asyncio.ensure_future(batcher.submit(0))]  # being scored
        await asyncio.sleep(0.02)
        futures += [asyncio.ensure_future(batcher.submit(i)) for i in (1, 2)]  # queued
        await asyncio.sleep(0.02)
        with pytest.raises(Overloaded, match="queued"):
            await batcher.submit(3)
        release.set()
        return await asyncio.gather(*futures)

    assert run(main()) == [0, 1, 2]
    batcher.close()


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        MicroBatcher(lambda xs: xs, max_batch_size=0)
    with pytest.raises(ValueError):
        MicroBatcher(lambda xs: xs, max_queue_delay_ms=0)

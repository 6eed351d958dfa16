"""In-process micro-batching with admission control, for the service's /recommend path.

Concurrent requests are queued in the worker's event loop and scored together by one function call in a
dedicated scoring thread, with no HTTP hop (the service used to call its own batchable endpoint through
BentoML's internal client, which failed thousands of times under load: bentoml/BentoML#5540).

Batching is opportunistic: an idle batcher scores a lone request at once (no wait window by default);
while a batch is being scored, the requests that arrive meanwhile form the next batch (up to
``max_batch_size``). So latency under light load is one scoring call, and under heavy load the batches grow
and the per-request cost falls.

Admission control keeps the queue short instead of letting it grow without bound. It measures rather than
predicts (as CoDel does): while the oldest queued request has waited longer than ``max_queue_delay_ms``, the
queue is not draining as fast as it fills, so new requests are refused at once with ``Overloaded`` (the
service answers 503 with ``Retry-After`` within milliseconds, never a timeout); a queue longer than
``max_queue`` is refused too. Accepted requests therefore wait at most about ``max_queue_delay_ms`` plus one
batch, and when a burst ends the queue is already short, so latency is back to idle at once.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Overloaded(Exception):
    """The batcher refused a request to keep its queue short; retry after ``retry_after_s``."""

    def __init__(self, reason: str, retry_after_s: int = 1) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


@dataclass
class BatcherStats:
    """Counters since start (read them in /metrics or tests)."""

    requests: int = 0
    batches: int = 0
    shed: int = 0
    largest_batch: int = 0
    batch_sizes: collections.Counter[int] = field(default_factory=collections.Counter)


class MicroBatcher(Generic[T, R]):
    """Queue items from many coroutines and score them with ``fn(list[T]) -> list[R]`` in one thread.

    ``fn`` must return one result per item, in order; an exception fails every item of that batch.
    Create it anywhere; it starts on the first ``submit`` in the running event loop.
    """

    def __init__(
        self,
        fn: Callable[[list[T]], Sequence[R]],
        *,
        max_batch_size: int = 64,
        max_wait_ms: float = 0.0,
        max_queue_delay_ms: float = 50.0,
        max_queue: int = 1024,
        name: str = "batcher",
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_queue < 1 or max_queue_delay_ms <= 0 or max_wait_ms < 0:
            raise ValueError("max_queue >= 1, max_queue_delay_ms > 0 and max_wait_ms >= 0 are required")
        self._fn = fn
        self.max_batch_size = int(max_batch_size)
        self.max_wait_s = float(max_wait_ms) / 1000.0
        self.max_queue_delay_s = float(max_queue_delay_ms) / 1000.0
        self.max_queue = int(max_queue)
        self.name = name
        self.stats = BatcherStats()
        # (item, future, monotonic time it was queued)
        self._queue: collections.deque[tuple[T, asyncio.Future[R], float]] = collections.deque()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{name}-scoring")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    # -- public ----------------------------------------------------------------------------------------
    async def submit(self, item: T) -> R:
        """Score one item with whatever else is queued; raises ``Overloaded`` instead of queueing too long."""
        self._ensure_started()
        assert self._wakeup is not None
        self.stats.requests += 1
        queued = len(self._queue)
        if queued >= self.max_queue:
            self.stats.shed += 1
            raise Overloaded(f"{self.name}: {queued} requests queued (limit {self.max_queue})")
        waited = self.oldest_wait_s()
        if waited > self.max_queue_delay_s:
            self.stats.shed += 1
            raise Overloaded(
                f"{self.name}: the oldest queued request has waited {waited * 1000:.0f} ms "
                f"(limit {self.max_queue_delay_s * 1000:.0f} ms)"
            )
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future, time.monotonic()))
        self._wakeup.set()
        return await future

    def oldest_wait_s(self) -> float:
        """How long the oldest queued (not yet scoring) request has waited, in seconds; 0 when none."""
        return time.monotonic() - self._queue[0][2] if self._queue else 0.0

    @property
    def queued(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- internals -------------------------------------------------------------------------------------
    def _ensure_started(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is loop and self._task is not None and not self._task.done():
            return
        self._loop = loop
        self._wakeup = asyncio.Event()
        self._task = loop.create_task(self._run(), name=f"{self.name}-loop")

    async def _run(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                if self.max_wait_s and len(self._queue) < self.max_batch_size:
                    await asyncio.sleep(self.max_wait_s)  # optional window to gather a fuller batch
                batch: list[tuple[T, asyncio.Future[R]]] = []
                while self._queue and len(batch) < self.max_batch_size:
                    item, future, _ = self._queue.popleft()
                    if not future.done():  # a cancelled waiter (client gone) is skipped
                        batch.append((item, future))
                if batch:
                    await self._score(loop, batch)

    async def _score(self, loop: asyncio.AbstractEventLoop, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        items = [item for item, _ in batch]
        try:
            results: Any = await loop.run_in_executor(self._executor, self._fn, items)
            if len(results) != len(batch):
                raise RuntimeError(f"{self.name}: got {len(results)} results for {len(batch)} items")
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - every waiter of the batch hears about it
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
        else:
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
        self.stats.batches += 1
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        self.stats.batch_sizes[len(batch)] += 1


__all__ = ["BatcherStats", "MicroBatcher", "Overloaded"]

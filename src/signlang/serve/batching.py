"""A bounded wait queue with dynamic batching for landmark clips, and a gate for video uploads.

:class:`Batcher` (event-loop side): a request's clips join one queue; ``concurrency`` consumers
each take as many waiting clips as fit in ``max_batch`` and classify them in one model call in a
worker thread. While every other consumer is busy (load), a consumer that found fewer than
``max_batch`` clips waits ``batch_window_ms`` for more before running; a lone request never
waits. A request is refused with 503 + ``Retry-After`` only when the queue is full or its clips
were still waiting after ``queue_deadline_s``; anything that started running finishes.

:class:`Gate`: at most ``limit`` holders at once and at most ``queue`` waiting; past that, 503.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from concurrent.futures import ThreadPoolExecutor

from signlang.serve.schemas import ServiceError


def busy_error(detail: str, retry_after_s: int) -> ServiceError:
    return ServiceError(503, "busy", detail, headers={"Retry-After": str(retry_after_s)})


@dataclass
class _Job:
    clips: list[np.ndarray]
    k: int
    future: asyncio.Future[tuple[list[Any], dict[int, str]]]
    enqueued: float = field(default_factory=time.perf_counter)
    started: bool = False


class Batcher:
    """Dynamic batching of landmark clips over a :class:`~signlang.serve.model_slot.ModelSlot`."""

    def __init__(self, slot: Any, *, concurrency: int, max_queue: int, max_batch: int, window_ms: float,
                 deadline_s: float, retry_after_s: int, metrics: Any) -> None:
        self.slot = slot
        self.concurrency = concurrency
        self.max_queue = max_queue
        self.max_batch = max_batch
        self.window_s = window_ms / 1000.0
        self.deadline_s = deadline_s
        self.retry_after_s = retry_after_s
        self.metrics = metrics
        self.queued_clips = 0
        self._jobs: deque[_Job] = deque()
        self._wake: asyncio.Event | None = None
        self._busy = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._pool: ThreadPoolExecutor | None = None  # one thread per consumer: a model call never waits for a thread

    # --- lifecycle (inside the event loop) ------------------------------------------------------
    def _ensure_started(self) -> None:
        if not self._tasks:
            self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="signlang-batch")
            self._wake = asyncio.Event()
            self._tasks = [asyncio.get_running_loop().create_task(self._consume(), name=f"signlang-batcher-{i}")
                           for i in range(self.concurrency)]

    async def stop(self) -> None:
        """Refuse what still waits, then stop the consumers (a running batch finishes)."""
        while self._jobs:
            job = self._jobs.popleft()
            self.queued_clips -= len(job.clips)
            if not job.future.done():
                job.future.set_exception(busy_error("the server is shutting down", self.retry_after_s))
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks = []
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    # --- requests ------------------------------------------------------------------------------
    async def submit(self, clips: list[np.ndarray], k: int) -> tuple[list[Any], dict[int, str]]:
        """Classify ``clips`` (in one or more batches shared with other requests).

        Returns ``(predictions with None for a failed clip, {index: error})``, or raises a 503
        :class:`ServiceError` when the queue is full or the wait passed the deadline.
        """
        self._ensure_started()
        if self.queued_clips + len(clips) > self.max_queue:
            self.metrics.rejected.labels("queue_full").inc()
            raise busy_error(f"the wait queue is full ({self.queued_clips} clips waiting, limit {self.max_queue}); retry shortly",
                             self.retry_after_s)
        job = _Job(clips, k, asyncio.get_running_loop().create_future())
        self._jobs.append(job)
        self.queued_clips += len(clips)
        self.metrics.queue_length.set(self.queued_clips)
        assert self._wake is not None
        self._wake.set()
        expiry = asyncio.get_running_loop().call_later(self.deadline_s, self._expire, job)
        try:
            return await job.future
        except asyncio.CancelledError:  # the client went away: drop it from the queue
            if not job.started:
                self._drop(job)
            raise
        finally:
            expiry.cancel()

    def _drop(self, job: _Job) -> None:
        try:
            self._jobs.remove(job)
        except ValueError:
            return
        self.queued_clips -= len(job.clips)
        self.metrics.queue_length.set(self.queued_clips)

    def _expire(self, job: _Job) -> None:
        """The deadline passed: a job still waiting (not started) is refused with 503."""
        if job.started or job.future.done():
            return
        self._drop(job)
        self.metrics.rejected.labels("deadline").inc()
        job.future.set_exception(busy_error(
            f"the request waited {self.deadline_s:g} s in the queue without starting (the deadline); retry shortly",
            self.retry_after_s))

    async def _take(self) -> list[_Job]:
        assert self._wake is not None
        while not self._jobs:
            self._wake.clear()
            await self._wake.wait()
        if self.window_s > 0 and self._busy > 0 and self._clips_waiting() < self.max_batch:
            await asyncio.sleep(self.window_s)  # under load: let the batch fill a little
        taken: list[_Job] = []
        n = 0
        now = time.perf_counter()
        while self._jobs and (not taken or n + len(self._jobs[0].clips) <= self.max_batch):
            job = self._jobs.popleft()
            self.queued_clips -= len(job.clips)
            if job.future.done():  # the client went away
                continue
            wait = now - job.enqueued
            if wait > self.deadline_s:
                self.metrics.rejected.labels("deadline").inc()
                job.future.set_exception(busy_error(
                    f"the request waited {wait:.1f} s in the queue, past the {self.deadline_s:g} s deadline; retry shortly",
                    self.retry_after_s))
                continue
            self.metrics.queue_wait.observe(wait)
            job.started = True
            taken.append(job)
            n += len(job.clips)
        self.metrics.queue_length.set(self.queued_clips)
        if self._jobs:
            self._wake.set()  # more for the other consumers
        return taken

    def _clips_waiting(self) -> int:
        return sum(len(j.clips) for j in self._jobs)

    async def _consume(self) -> None:
        while True:
            jobs = await self._take()
            if not jobs:
                continue
            self._busy += 1
            self.metrics.in_flight.inc()
            try:
                clips = [c for j in jobs for c in j.clips]
                self.metrics.batch_size.observe(len(clips))
                k = max(j.k for j in jobs)
                try:
                    preds, errors = await asyncio.get_running_loop().run_in_executor(self._pool, self._run, clips, k)
                except Exception as exc:  # a model failure fails this batch only
                    for j in jobs:
                        if not j.future.done():
                            j.future.set_exception(exc)
                    continue
                for p in preds:
                    if p is not None:
                        self.metrics.observe_timings(p.timings_ms)
                start = 0
                for j in jobs:
                    n = len(j.clips)
                    mine = {i - start: e for i, e in errors.items() if start <= i < start + n}
                    if not j.future.done():
                        j.future.set_result((preds[start:start + n], mine))
                    start += n
            finally:
                self._busy -= 1
                self.metrics.in_flight.dec()

    def _run(self, clips: list[np.ndarray], k: int) -> tuple[list[Any], dict[int, ValueError]]:
        with self.slot.use() as predictor:
            return predictor.predict_batch(clips, k)


class Gate:
    """At most ``limit`` concurrent holders and ``queue`` waiters (event-loop side only)."""

    def __init__(self, limit: int, queue: int, *, deadline_s: float, retry_after_s: int, metrics: Any, name: str) -> None:
        self.limit, self.queue, self.deadline_s, self.retry_after_s = limit, queue, deadline_s, retry_after_s
        self.metrics, self.name = metrics, name
        self.waiting = 0
        self._sem: asyncio.Semaphore | None = None

    async def __aenter__(self) -> "Gate":
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.limit)
        if self._sem.locked() and self.waiting >= self.queue:
            self.metrics.rejected.labels(f"{self.name}_queue_full").inc()
            raise busy_error(f"{self.limit} {self.name} predictions are running and {self.waiting} waiting; retry shortly",
                             self.retry_after_s)
        self.waiting += 1
        try:
            await asyncio.wait_for(self._sem.acquire(), timeout=self.deadline_s)
        except (asyncio.TimeoutError, TimeoutError):
            self.metrics.rejected.labels(f"{self.name}_deadline").inc()
            raise busy_error(f"waited {self.deadline_s:g} s for a free {self.name} slot; retry shortly", self.retry_after_s) from None
        finally:
            self.waiting -= 1
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._sem is not None
        self._sem.release()

"""Dynamic batching: concurrent requests become one model call.

Requests wait in a bounded queue. A single worker takes the first waiting request, then gathers more until
the batch is full or ``max_wait`` has passed. It does not wait at all when no other request is on its way:
handlers announce each request with :meth:`Batcher.arrival` as soon as it arrives, before decoding it, so
a lone request pays no batching delay. The worker drops every request whose caller has gone (cancelled, or
its deadline passed) so the model never spends time on them, and runs the rest as one batch per distinct
generation setting in a worker thread, keeping the event loop free for decoding and I/O.

A failing model call is split in halves and each half retried, down to single requests, so only the request
that causes a failure (or the one that alone does not fit in memory) gets the error; its batch-mates are
answered. The error reaches the request as :class:`ModelCallError`, which says whether it failed alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..backends.base import Backend, Generation, GenerationOptions, Request

logger = logging.getLogger(__name__)


class QueueFullError(RuntimeError):
    """More requests are waiting than the server accepts: answered RESOURCE_EXHAUSTED."""


class DeadlinePassedError(RuntimeError):
    """The request's deadline passed while it waited: it was never sent to the model."""


class ModelCallError(RuntimeError):
    """The model call failed for this request when it ran alone (after any split): ``cause`` is why."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause


@dataclass
class BatchResult:
    """A request's generation and how it was served."""

    generation: Generation
    queued_ms: float
    batch_size: int


@dataclass
class _Job:
    request: Request
    options: GenerationOptions
    future: asyncio.Future
    enqueued: float
    deadline: float | None

    def wanted(self, now: float) -> bool:
        """False when nobody waits for the answer any more (cancelled, or past its deadline)."""
        if self.future.done():
            return False
        if self.deadline is not None and now >= self.deadline:
            self.future.set_exception(DeadlinePassedError("deadline passed while queued"))
            return False
        return True


@dataclass
class BatchStats:
    """Counters exposed through GetModelInfo."""

    batch_sizes: Counter = field(default_factory=Counter)
    """Every model call by its size, failed ones included."""
    skipped_gone: int = 0
    failed_calls: int = 0
    """Model calls that raised (a split batch's failing halves count too)."""
    split_batches: int = 0
    """Failed calls of more than one request that were split and retried."""


class Arrival:
    """A request announced to the batcher but not queued yet (it is being decoded)."""

    def __init__(self, batcher: Batcher) -> None:
        self._batcher: Batcher | None = batcher
        batcher._arriving += 1

    def close(self) -> None:
        """Idempotent: called when the request is queued or fails before that."""
        if self._batcher is not None:
            self._batcher._arriving -= 1
            self._batcher = None


class Batcher:
    def __init__(self, backend: Backend, max_batch_size: int, max_wait_s: float, max_queue: int) -> None:
        self.backend = backend
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.stats = BatchStats()
        self._queue: asyncio.Queue[_Job] = asyncio.Queue(maxsize=max_queue)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="molmo-model")
        self._worker: asyncio.Task | None = None
        self._arriving = 0

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    def arrival(self) -> Arrival:
        """Announce a request that will be submitted soon, so a forming batch waits for it."""
        return Arrival(self)

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="molmo-batcher")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if not job.future.done():
                job.future.set_exception(RuntimeError("server shutting down"))
        self._executor.shutdown(wait=True)

    async def submit(
        self,
        request: Request,
        options: GenerationOptions,
        deadline: float | None = None,
        arrival: Arrival | None = None,
    ) -> BatchResult:
        """Queue one request and wait for its answer; ``deadline`` is a ``time.monotonic()`` value."""
        loop = asyncio.get_running_loop()
        job = _Job(request, options, loop.create_future(), time.monotonic(), deadline)
        try:
            if arrival is not None:
                arrival.close()
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            raise QueueFullError(
                f"{self._queue.maxsize} requests are already waiting; retry later or raise --max-queue"
            ) from None
        return await job.future  # cancelling this await marks the job unwanted

    async def _run(self) -> None:
        while True:
            batch = await self._gather()
            for group in _group_by_options(batch):
                await self._execute(group)

    async def _gather(self) -> list[_Job]:
        batch = [await self._queue.get()]
        until = time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch_size:
            if self._queue.empty() and self._arriving == 0:
                break  # nobody else is on the way: waiting would only add latency
            remaining = until - time.monotonic()
            if remaining <= 0:
                while len(batch) < self.max_batch_size and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def _execute(self, jobs: Sequence[_Job]) -> None:
        """Run one model call; on failure split it in halves and retry each (see the module's docstring)."""
        now = time.monotonic()
        live = [job for job in jobs if job.wanted(now)]
        self.stats.skipped_gone += len(jobs) - len(live)
        if not live:
            return
        started = time.monotonic()
        self.stats.batch_sizes[len(live)] += 1
        loop = asyncio.get_running_loop()
        try:
            generations = await loop.run_in_executor(
                self._executor, self.backend.generate, [job.request for job in live], live[0].options
            )
        except Exception as exc:
            self.stats.failed_calls += 1
            await self._after_failure(live, exc)
            return
        for job, generation in zip(live, generations, strict=True):
            if not job.future.done():
                queued_ms = (started - job.enqueued) * 1000
                job.future.set_result(BatchResult(generation, queued_ms, len(live)))

    async def _after_failure(self, jobs: Sequence[_Job], exc: Exception) -> None:
        """A lone request gets the error; a batch is halved and each half tried again."""
        if len(jobs) == 1:
            if not jobs[0].future.done():
                jobs[0].future.set_exception(ModelCallError(exc))
            return
        self.stats.split_batches += 1
        logger.warning(
            "model call failed for a batch of %d (%s: %s); retrying it in halves",
            len(jobs),
            type(exc).__name__,
            str(exc)[:200],
        )
        half = len(jobs) // 2
        await self._execute(jobs[:half])
        await self._execute(jobs[half:])


def _group_by_options(jobs: Sequence[_Job]) -> list[list[_Job]]:
    """Only requests with the same generation settings can share one ``generate`` call."""
    groups: dict[GenerationOptions, list[_Job]] = {}
    for job in jobs:
        groups.setdefault(job.options, []).append(job)
    return list(groups.values())

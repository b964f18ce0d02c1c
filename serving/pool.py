"""The inference pool: ``workers`` threads behind a bounded queue of waiting requests.

    pool = InferencePool(workers=1, queue_size=8)
    result = await pool.run(fn, deadline=loop.time() + 120, gone=request.is_disconnected)

A request gets a free worker at once, or waits in a FIFO queue of at most ``queue_size``
requests; when that is full :meth:`InferencePool.run` raises :class:`QueueFull` at once (the
service answers 503 with Retry-After). While a request waits, its client is polled every
``poll`` seconds: one that has gone is taken out of the queue (:class:`ClientGone`) and never
runs. ``deadline`` covers the wait and the run: past it :class:`Deadline` is raised. A thread
cannot be interrupted, so a run that overruns finishes in the background and its worker is
released only then: no more than ``workers`` inferences ever run at once.

Why threads: torch releases the GIL inside its kernels, and a thread shares the loaded
generators (a process pool would hold one copy of every style per process). Why one worker by
default: on a CPU, torch already spreads one inference over every core; two at once on two cores
are slower than one after the other. On a GPU, more workers overlap the host-side work (decode,
encode) of one request with the inference of another.
"""
from __future__ import annotations

import asyncio
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Awaitable, Callable


class QueueFull(Exception):
    """Every worker is busy and ``queue_size`` requests are already waiting."""


class ClientGone(Exception):
    """The client disconnected while its request was waiting."""


class Deadline(Exception):
    """The request's deadline passed while it waited or ran."""


class InferencePool:
    def __init__(self, workers: int = 1, queue_size: int = 8, *, poll: float = 0.25,
                 thread_name: str = "toonface-infer"):
        if workers < 1 or queue_size < 0:
            raise ValueError(f"workers must be >= 1 and queue_size >= 0, got {workers}, {queue_size}")
        self.workers, self.queue_size, self.poll = workers, queue_size, poll
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix=thread_name)
        self._free = workers
        self._waiters: deque[asyncio.Future] = deque()
        self.running = 0  # inferences in a thread right now (may outlive their request)
        self.closed = False

    # ----------------------------------------------------------------------- state
    @property
    def queued(self) -> int:
        """Requests waiting for a worker."""
        return len(self._waiters)

    def full(self) -> bool:
        return self._free == 0 and len(self._waiters) >= self.queue_size

    # ------------------------------------------------------------------- the slots
    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # hand the worker straight to the next waiter
                waiter.set_result(None)
                return
        self._free += 1

    async def _acquire(self, deadline: float, gone: Callable[[], Awaitable[bool]] | None) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        if len(self._waiters) >= self.queue_size:
            raise QueueFull()
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._waiters.append(waiter)
        try:
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise Deadline()
                done, _ = await asyncio.wait({waiter}, timeout=min(self.poll, remaining))
                if done:
                    waiter.result()  # raises what close() set
                    return
                if gone is not None and await gone():
                    raise ClientGone()
        except BaseException:
            # Out of the queue; if the slot was handed over in the meantime, pass it on.
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._release()
            else:
                waiter.cancel()
                try:
                    self._waiters.remove(waiter)
                except ValueError:
                    pass
            raise

    # ------------------------------------------------------------------------ run
    async def run(self, fn: Callable[[], Any], *, deadline: float,
                  gone: Callable[[], Awaitable[bool]] | None = None) -> Any:
        """``fn()`` in a worker thread; its result or its exception.

        Raises QueueFull (nothing waited), ClientGone (taken out of the queue), Deadline.
        """
        if self.closed:
            raise RuntimeError("the pool is closed")
        await self._acquire(deadline, gone)
        loop = asyncio.get_running_loop()
        try:
            if gone is not None and await gone():  # it may have gone at the last moment
                raise ClientGone()
            fut = loop.run_in_executor(self._executor, fn)
        except BaseException:
            self._release()
            raise
        self.running += 1

        def done(_f) -> None:
            self.running -= 1
            self._release()
            if not _f.cancelled():
                _f.exception()  # retrieved: a run that outlived its request may end in an error

        fut.add_done_callback(done)
        remaining = deadline - loop.time()
        try:
            return await asyncio.wait_for(asyncio.shield(fut), max(remaining, 0.0))
        except asyncio.TimeoutError:
            raise Deadline() from None

    def close(self) -> None:
        """Stop taking work; waiting requests fail, running ones finish in their threads."""
        self.closed = True
        while self._waiters:
            w = self._waiters.popleft()
            if not w.done():
                w.set_exception(ClientGone())
        self._executor.shutdown(wait=False, cancel_futures=True)

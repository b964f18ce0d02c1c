"""serving.pool.InferencePool and serving.engine.StyleCache on their own: bounded queue, FIFO,
clients that leave, deadlines, at most ``workers`` runs at once, one load per style."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest

from serving.engine import StyleCache
from serving.pool import ClientGone, Deadline, InferencePool, QueueFull


def run(coro):
    return asyncio.run(coro)


def test_queue_bound_fifo_and_at_most_workers_at_once():
    async def main():
        pool = InferencePool(workers=2, queue_size=3, poll=0.01)
        gate = threading.Event()
        order, active, peak = [], [0], [0]
        lock = threading.Lock()

        def job(i):
            def fn():
                with lock:
                    active[0] += 1
                    peak[0] = max(peak[0], active[0])
                gate.wait(10)
                with lock:
                    active[0] -= 1
                    order.append(i)
                return i
            return fn

        loop = asyncio.get_running_loop()
        tasks = []
        for i in range(5):
            tasks.append(asyncio.create_task(pool.run(job(i), deadline=loop.time() + 10)))
            await asyncio.sleep(0.02)  # arrive in this order
        assert pool.running == 2 and pool.queued == 3 and pool.full()
        with pytest.raises(QueueFull):
            await pool.run(job(99), deadline=loop.time() + 10)
        gate.set()
        assert await asyncio.gather(*tasks) == [0, 1, 2, 3, 4]
        assert peak[0] == 2 and sorted(order) == [0, 1, 2, 3, 4]
        assert pool.queued == 0 and pool._free == 2
        pool.close()

    run(main())


def test_waiting_requests_start_in_arrival_order():
    async def main():
        pool = InferencePool(workers=1, queue_size=4, poll=0.01)
        gate, started = threading.Event(), []

        def job(i):
            def fn():
                started.append(i)  # one worker: starts cannot race
                gate.wait(10)
                return i
            return fn

        loop = asyncio.get_running_loop()
        tasks = []
        for i in range(5):
            tasks.append(asyncio.create_task(pool.run(job(i), deadline=loop.time() + 10)))
            await asyncio.sleep(0.02)
        gate.set()
        assert await asyncio.gather(*tasks) == [0, 1, 2, 3, 4]
        assert started == [0, 1, 2, 3, 4]
        pool.close()

    run(main())


def test_a_client_that_left_is_taken_out_of_the_queue_and_never_runs():
    async def main():
        pool = InferencePool(workers=1, queue_size=2, poll=0.01)
        gate, ran = threading.Event(), []
        loop = asyncio.get_running_loop()
        first = asyncio.create_task(pool.run(lambda: (gate.wait(10), ran.append("a")),
                                             deadline=loop.time() + 10))
        await asyncio.sleep(0.05)
        left = [False]

        async def gone():
            return left[0]

        waiting = asyncio.create_task(pool.run(lambda: ran.append("b"), deadline=loop.time() + 10,
                                               gone=gone))
        await asyncio.sleep(0.05)
        assert pool.queued == 1
        left[0] = True
        with pytest.raises(ClientGone):
            await waiting
        assert pool.queued == 0  # out of the queue at once, not when a worker frees
        gate.set()
        await first
        assert ran == ["a"]
        assert await pool.run(lambda: "c", deadline=loop.time() + 5) == "c"
        pool.close()

    run(main())


def test_deadline_while_waiting_and_while_running():
    async def main():
        pool = InferencePool(workers=1, queue_size=1, poll=0.01)
        gate = threading.Event()
        loop = asyncio.get_running_loop()
        t0 = time.monotonic()
        with pytest.raises(Deadline):  # runs too long
            await pool.run(lambda: gate.wait(10), deadline=loop.time() + 0.2)
        assert time.monotonic() - t0 < 2
        # the overrunning thread still holds the only worker: the next request waits, then times out
        assert pool.running == 1
        with pytest.raises(Deadline):
            await pool.run(lambda: "x", deadline=loop.time() + 0.2)
        assert pool.queued == 0
        gate.set()
        for _ in range(100):
            if pool.running == 0:
                break
            await asyncio.sleep(0.02)
        assert await pool.run(lambda: "y", deadline=loop.time() + 5) == "y"
        pool.close()

    run(main())


def test_errors_of_the_work_reach_the_caller_and_free_the_worker():
    async def main():
        pool = InferencePool(workers=1, queue_size=0)
        loop = asyncio.get_running_loop()

        def boom():
            raise ValueError("bad")

        with pytest.raises(ValueError, match="bad"):
            await pool.run(boom, deadline=loop.time() + 5)
        assert await pool.run(lambda: 1, deadline=loop.time() + 5) == 1
        pool.close()

    run(main())


class SlowEngine:
    name = "slow"

    def __init__(self):
        self.loads = []

    def load(self, spec):
        self.loads.append(spec)
        time.sleep(0.2)
        if spec == "bad":
            raise ValueError("cannot load")
        return object()


def test_style_cache_loads_once_under_concurrency_and_evicts_lru():
    engine = SlowEngine()
    cache = StyleCache(engine, max_loaded=2)
    got = []
    threads = [threading.Thread(target=lambda: got.append(cache.get("a"))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert engine.loads == ["a"] and len({id(g) for g in got}) == 1
    cache.get("b")
    cache.get("a")          # a is now the most recent
    cache.get("c")          # evicts b
    assert cache.loaded() == ["a", "c"]
    cache.get("b")
    assert engine.loads == ["a", "b", "c", "b"]
    with pytest.raises(ValueError):
        cache.get("bad")
    with pytest.raises(ValueError):  # a failed load is not cached: tried again
        cache.get("bad")
    assert engine.loads.count("bad") == 2

"""The work queue on its own: one job at a time, a fixed number waiting, places held until the work ends."""

from __future__ import annotations

import asyncio
import threading

import pytest

from cnnlab.serve.work import Busy, WorkQueue


def test_jobs_run_one_at_a_time_in_order():
    queue = WorkQueue(waiting=8)
    inside, most, order = 0, 0, []
    lock = threading.Lock()

    def job(number):
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
        order.append(number)
        with lock:
            inside -= 1
        return number * number

    async def scenario():
        return await asyncio.gather(*(queue.run(job, n) for n in range(9)))

    try:
        assert asyncio.run(scenario()) == [n * n for n in range(9)]
        assert most == 1 and order == list(range(9))
    finally:
        queue.close()


def test_a_caller_that_gives_up_keeps_its_place_until_its_job_ends():
    """A client that hangs up must not free a place while its job still holds the worker."""
    queue = WorkQueue(waiting=0)
    release = threading.Event()
    started = threading.Event()

    def job():
        started.set()
        release.wait(30)

    async def scenario():
        task = asyncio.create_task(queue.run(job))
        while not started.is_set():
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert queue.stats() == {"running": 1, "waiting": 0, "capacity": 1}
        with pytest.raises(Busy) as refused:
            await queue.run(lambda: None)
        assert refused.value.retry_after >= 1
        release.set()
        for _ in range(2000):
            if queue.stats()["running"] == 0 and queue._admitted == 0:
                break
            await asyncio.sleep(0.005)
        assert await queue.run(lambda: "free again") == "free again"

    try:
        asyncio.run(scenario())
    finally:
        release.set()
        queue.close()

"""The bounded work queue: one thread runs the model's work, a fixed number of jobs may wait behind it.

One worker, because explanations borrow the model (hooks on its layers,
swapped ReLU rules): two at once on the same network would see each other's
hooks. A fixed bound on waiting jobs keeps memory flat under load: a request
past it is refused at once (`Busy`, answered 503 with Retry-After) instead of
holding its upload in memory while it waits.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, TypeVar

Result = TypeVar("Result")


class Busy(Exception):
    """Every place in the queue is taken; `retry_after` is the expected wait in whole seconds."""

    def __init__(self, retry_after: int):
        super().__init__(f"The server is busy; try again in {retry_after} s.")
        self.retry_after = retry_after


class WorkQueue:
    """Runs jobs one at a time on a worker thread, with at most `waiting` more admitted behind the running one."""

    def __init__(self, waiting: int = 16):
        if waiting < 0:
            raise ValueError(f"waiting must be >= 0, got {waiting}")
        self.waiting = waiting
        self._executor: ThreadPoolExecutor | None = None  # started on first use, again after `close`
        self._lock = threading.Lock()
        self._admitted = 0  # running + waiting; released when a job finishes or is cancelled before it starts
        self._running = 0
        self._seconds: deque[float] = deque([0.5], maxlen=32)  # recent job durations, for Retry-After

    @property
    def capacity(self) -> int:
        """Jobs admitted at most at once: the running one and those waiting."""
        return 1 + self.waiting

    def stats(self) -> dict:
        with self._lock:
            return {"running": self._running, "waiting": self._admitted - self._running, "capacity": self.capacity}

    async def run(self, job: Callable[..., Result], *args) -> Result:
        """`job(*args)` on the worker thread; Busy at once when `capacity` jobs are already admitted."""
        with self._lock:
            if self._admitted >= self.capacity:
                raise Busy(self._retry_after())
            self._admitted += 1
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="cnnlab-serve-model")
            executor = self._executor
        try:
            future = executor.submit(self._timed, job, *args)
        except RuntimeError:  # closed meanwhile
            self._release(None)
            raise
        # Released when the job ends, not when this coroutine does: a client that hangs up must not free
        # a place while its job still holds the worker.
        future.add_done_callback(self._release)
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        """Finish the running job, drop those waiting, and stop the worker thread (the next job starts another)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def _timed(self, job: Callable[..., Result], *args) -> Result:
        with self._lock:
            self._running += 1
        started = time.perf_counter()
        try:
            return job(*args)
        finally:
            with self._lock:
                self._running -= 1
                self._seconds.append(time.perf_counter() - started)

    def _release(self, future: Future | None) -> None:
        with self._lock:
            self._admitted -= 1

    def _retry_after(self) -> int:
        """Seconds until the jobs admitted now have likely run (the lock is held)."""
        typical = sorted(self._seconds)[len(self._seconds) // 2]
        return max(1, min(60, math.ceil(typical * self._admitted)))

"""One compute queue per device: a single worker thread that runs torch jobs one at a time, in order.

Requests never run two jobs on a device over each other; the event loop stays free while a job runs.

Example:
    >>> queue = ComputeQueue("cpu")
    >>> queue.submit(lambda: 2 + 3).result()
    5
    >>> queue.close()
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

R = TypeVar("R")


class ComputeQueue:
    """A FIFO of jobs run by one daemon thread; :meth:`close` lets queued jobs finish, then stops it."""

    def __init__(self, device: str) -> None:
        self.device = device
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self.running = 0  # jobs running now: never more than one (the load test reads it)
        self.most_at_once = 0
        self._thread = threading.Thread(target=self._work, name=f"cnnviz-compute-{device}", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, future = job
            if not future.set_running_or_notify_cancel():
                continue
            with self._lock:
                self.running += 1
                self.most_at_once = max(self.most_at_once, self.running)
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to the waiting request, which turns it into a response
                future.set_exception(exc)
            finally:
                with self._lock:
                    self.running -= 1

    def submit(self, fn: Callable[[], R]) -> Future[R]:
        """Queue ``fn``; its future holds the result or the exception."""
        future: Future[R] = Future()
        self._jobs.put((fn, future))
        return future

    async def run(self, fn: Callable[[], R]) -> R:
        """Queue ``fn`` and wait for it without blocking the event loop."""
        return await asyncio.wrap_future(self.submit(fn))

    def close(self, timeout: float | None = 30.0) -> None:
        """Stop after the queued jobs."""
        self._jobs.put(None)
        self._thread.join(timeout)


class Queues:
    """The compute queue of each device, made on first use."""

    def __init__(self) -> None:
        self._queues: dict[str, ComputeQueue] = {}
        self._lock = threading.Lock()

    def __getitem__(self, device: str) -> ComputeQueue:
        with self._lock:
            if device not in self._queues:
                self._queues[device] = ComputeQueue(device)
            return self._queues[device]

    def all(self) -> list[ComputeQueue]:
        """Every queue made so far."""
        with self._lock:
            return list(self._queues.values())

    def close(self) -> None:
        """Stop every queue after its queued jobs."""
        for q in self.all():
            q.close()

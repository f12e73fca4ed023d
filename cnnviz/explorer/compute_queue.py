"""One scheduler per device: a single worker thread that runs torch work one piece at a time. Interactive
calls (an explain, a prediction, a page's computation) always go before the next round of a long job, so a
request made while jobs run waits for at most the round in progress. After an interactive call the next round
waits :data:`LINGER` seconds for the same request's next call (a page that computes twice waits once).

Requests never run two pieces of work on a device over each other; the event loop stays free while one runs.

Example:
    >>> queue = ComputeQueue("cpu")
    >>> queue.submit(lambda: 2 + 3).result()
    5
    >>> order = []
    >>> def busy():  # while it runs, a job's round and then an interactive call are queued
    ...     return queue.submit_round(lambda: order.append("round")), queue.submit(lambda: order.append("call"))
    >>> [later.result() for later in queue.submit(busy).result()]
    [None, None]
    >>> queue.close(); order
    ['call', 'round']
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

R = TypeVar("R")
LINGER = 0.05
_Work = tuple[Callable[[], Any], Future]


class ComputeQueue:
    """Two FIFOs run by one daemon thread: interactive calls first, then job rounds; :meth:`close` lets the
    queued work finish, then stops it.

    Attributes:
        running: pieces of work running now: never more than one (the load test reads it).
        rounds_run: job rounds run so far.
    """

    def __init__(self, device: str) -> None:
        self.device = device
        self._calls: collections.deque[_Work] = collections.deque()
        self._rounds: collections.deque[_Work] = collections.deque()
        self._ready = threading.Condition()
        self._closing = False
        self.running = 0
        self.most_at_once = 0
        self.rounds_run = 0
        self._call_ended = float("-inf")
        self._thread = threading.Thread(target=self._work, name=f"cnnviz-compute-{device}", daemon=True)
        self._thread.start()

    def _next(self) -> tuple[_Work, bool] | None:
        """The next piece of work, and whether it is an interactive call; None when closed and drained."""
        with self._ready:
            while True:
                if self._calls:
                    return self._calls.popleft(), True
                linger = self._call_ended + LINGER - time.monotonic()
                if self._rounds and linger <= 0:
                    self.rounds_run += 1
                    return self._rounds.popleft(), False
                if not self._rounds and self._closing:
                    return None
                self._ready.wait(linger if self._rounds else None)

    def _work(self) -> None:
        while (work := self._next()) is not None:
            (fn, future), call = work
            if not future.set_running_or_notify_cancel():
                continue
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to the waiting request, which turns it into a response
                future.set_exception(exc)
            finally:
                self.running -= 1
                if call:
                    self._call_ended = time.monotonic()

    def _put(self, line: collections.deque[_Work], fn: Callable[[], R]) -> Future[R]:
        future: Future[R] = Future()
        with self._ready:
            line.append((fn, future))
            self._ready.notify()
        return future

    def submit(self, fn: Callable[[], R]) -> Future[R]:
        """Queue the interactive call ``fn`` (before every queued round); its future holds the result or the
        exception."""
        return self._put(self._calls, fn)

    def submit_round(self, fn: Callable[[], R]) -> Future[R]:
        """Queue one round of a long job, after the interactive calls (rounds of several jobs take turns)."""
        return self._put(self._rounds, fn)

    async def run(self, fn: Callable[[], R]) -> R:
        """Queue the interactive call ``fn`` and wait for it without blocking the event loop."""
        return await asyncio.wrap_future(self.submit(fn))

    def close(self, timeout: float | None = 30.0) -> None:
        """Stop after the queued work."""
        with self._ready:
            self._closing = True
            self._ready.notify()
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
        """Stop every queue after its queued work."""
        for q in self.all():
            q.close()

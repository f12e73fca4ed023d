"""Long work as jobs: run on the compute queue's scheduler one round at a time, after every interactive request
(:meth:`ComputeQueue.submit_round`), so a request waits for at most one round, the latest result can be shown
while the job runs, and a cancel takes effect at the next round. Every work size has a declared bound
(:data:`MAX_STEPS`); a job's status tells its cost (steps, rounds, seconds estimated from the rounds run).

:class:`Job` is the mechanism; each kind of job says what one round does: the atlas of a layer
(:mod:`explorer.atlas_job`) scans a chunk of the data; the optimizations (:class:`SteppedJob`: activation
maximization of a unit here, inversion, DeepDream and attacks in :mod:`explorer.optimize_jobs`) go on with their
one call of the engine for a few steps.

A job started by a page (``watch``) is cancelled at its next round once no page has polled its status for
:data:`GRACE` seconds (the last page watching it was closed); a job started from the API runs to its end.

Example:
    >>> from cnnviz import zoo
    >>> from cnnviz.explorer.compute_queue import ComputeQueue
    >>> handle = zoo.load("fashion_cnn", device="cpu")
    >>> queue = ComputeQueue("cpu")
    >>> job = UnitJob(handle, "features.block2", 3, steps=8, round_steps=4)
    >>> job.start(queue).result() is None, job.state, job.step, job.rounds
    (True, 'done', 8, 2)
    >>> job.cost()["steps"], job.cost()["rounds_total"]
    (8, 2)
    >>> picture = interpret.actmax(handle, unit="features.block2:3", preset="jitter", steps=8, progress=False)
    >>> torch.equal(job.result, picture)
    True
    >>> queue.close()
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from concurrent.futures import Future
from typing import Annotated, Any

import numpy as np
import torch

from cnnviz import interpret
from cnnviz.explorer.compute_queue import ComputeQueue
from cnnviz.explorer.stepped import Stepped
from cnnviz.interpret.optimize import unmoved
from cnnviz.zoo.core import Between, check_call
from cnnviz.zoo.handle import ModelHandle

OVER = ("done", "cancelled", "failed")
MAX_STEPS = 5000  # the most steps (of a unit's or an optimization's run) a request may ask for
ROUND_SECONDS = 0.25  # a round stops after about this long: the most a request made meanwhile waits
LIVE_SECONDS = 0.2  # the picture shown while a job runs is refreshed at most this often
GRACE = 90.0  # a job started by a page is cancelled when no page has polled it for this many seconds: longer than
# the minute a browser may hold the timers of a hidden tab (Chrome's intensive throttling), so a tab in the
# background is not taken for a closed one
clock = time.monotonic  # the clock the watch reads (a test swaps it)

Steps = Annotated[int, Between(1, MAX_STEPS)]


class Job:
    """Work of ``steps`` steps done in rounds on a compute queue; subclasses define :meth:`advance`.

    Attributes:
        state: queued, running, done, cancelled or failed.
        step: steps done so far (of ``steps``).
        round_steps: the most steps one round does.
        rounds: rounds run so far; seconds: the time they took.
        image: the latest picture ``(C, H, W)`` in [0, 1], for jobs that make one.
    """

    kind = "job"

    def __init__(self, steps: int, round_steps: int) -> None:
        self.id = uuid.uuid4().hex
        self.steps, self.round_steps = steps, round_steps
        self.step = self.rounds = 0
        self.seconds = 0.0
        self.state = "queued"
        self.error: str | None = None
        self.image: np.ndarray | None = None
        self.watched: float | None = None  # when a page last polled it; None: started from the API, never orphaned
        self._cancel = threading.Event()
        self._done: Future[None] = Future()

    def advance(self) -> int:
        """Do one round of the work; return how many steps it did."""
        raise NotImplementedError

    def completed(self) -> None:
        """Called on the queue once every step is done (a job that keeps a result writes it here)."""

    def ended(self) -> None:
        """Called on the queue when the job is over, however it ended (a job that holds a run releases it)."""

    def start(self, queue: ComputeQueue) -> Future[None]:
        """Queue the first round; each round queues the next."""
        self._queue = queue
        queue.submit_round(self._round)
        return self._done

    def watch(self) -> None:
        """A page polled this job: it runs on while polled (a job a page starts is watched from its start)."""
        self.watched = clock()

    def adopt(self) -> None:
        """Started (again) from the API: runs to its end whether or not a page watches it."""
        self.watched = None

    def asked(self, watch: bool, new: bool) -> None:
        """A start asked for this job (``new``: made for this start): a start from the API keeps it running to its
        end; a page's start watches it, unless the page joins a job the API started, which it leaves running."""
        if not watch:
            self.adopt()
        elif new or self.watched is not None:
            self.watch()

    def orphaned(self) -> bool:
        """Started by a page, and no page has polled it for :data:`GRACE` seconds (the last page closed)."""
        return self.watched is not None and clock() - self.watched > GRACE

    def cancel(self) -> None:
        """Stop at the next round (what was made so far stays)."""
        self._cancel.set()
        if self.state == "queued" and self.step == 0 and not self._done.done():
            self.state = "cancelled"

    @property
    def over(self) -> bool:
        return self.state in OVER

    def wait(self, timeout: float | None = None) -> None:
        """Block until the job is over."""
        self._done.result(timeout)

    def _round(self) -> None:
        if self.orphaned():  # the sweep, once a round: nobody watches a page-started job any more
            self.cancel()
            self.error = f"no page polled it for {GRACE:g} s (the page was closed)"
        if self._cancel.is_set():
            self._finish("cancelled")
            return
        self.state = "running"
        began = time.perf_counter()
        try:
            done = self.advance()  # before reading self.step: a round may move it itself
            self.step += done
            self.rounds += 1
            self.seconds += time.perf_counter() - began
            if self.step >= self.steps and not self._cancel.is_set():
                self.completed()
        except Exception as exc:  # reported on the job's status, as the one line it says
            self.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self._finish("failed")
            return
        if self.step >= self.steps:
            self._finish("done")
        else:
            self._queue.submit_round(self._round)

    def _finish(self, state: str) -> None:
        self.ended()
        self.state = "cancelled" if self._cancel.is_set() and state != "failed" else state
        if not self._done.done():
            self._done.set_result(None)

    def describe(self) -> dict[str, Any]:
        """What this kind of job adds to its status."""
        return {}

    def cost(self) -> dict[str, Any]:
        """What the whole job takes: ``steps``, at most ``round_steps`` a round, ``rounds_total`` (the rounds run
        and those left at the pace so far), and ``seconds`` at the pace so far (None before the first round)."""
        pace = self.step / self.rounds if self.rounds and self.step else self.round_steps
        left = self.steps - self.step
        seconds = self.seconds / self.step * self.steps if self.rounds and self.step else None
        return {"steps": self.steps, "round_steps": self.round_steps,
                "rounds_total": self.rounds + (math.ceil(left / pace) if left > 0 and not self.over else 0),
                "seconds": None if seconds is None else round(seconds, 2)}

    def status(self) -> dict[str, Any]:
        """What the page polls: state, progress (steps and rounds), the cost, the error if any, and the latest
        picture's URL."""
        return {"id": self.id, "kind": self.kind, "state": self.state, "step": self.step, "steps": self.steps,
                "rounds": self.rounds, "watched": self.watched is not None, "cost": self.cost(), "error": self.error,
                **self.describe(),
                "image": f"/api/jobs/{self.id}/image.png" if self.image is not None else None}


class SteppedJob(Job):
    """A job that is one call of the Python API (:meth:`call`), run ``round_steps`` engine steps (or
    :data:`ROUND_SECONDS`) a round by :class:`explorer.stepped.Stepped`: its picture is the call's own answer,
    and the picture shown while it runs is the engine's latest, at most every :data:`LIVE_SECONDS`."""

    def __init__(self, handle: ModelHandle, steps: int, round_steps: int) -> None:
        super().__init__(steps, round_steps)
        self.handle = handle
        self.result: torch.Tensor | None = None
        self._shown = 0.0
        self.run = Stepped(self.call, handle, round_steps=round_steps, round_seconds=ROUND_SECONDS, total=steps,
                           on_step=self._watch)

    def call(self) -> torch.Tensor:
        """The Python API call this job makes (images in [0, 1])."""
        raise NotImplementedError

    def _watch(self, image: torch.nn.Module, steps: int) -> None:
        self.step = min(steps, self.steps - 1)
        if time.monotonic() - self._shown > LIVE_SECONDS:
            with torch.no_grad():
                self.image = image()[0].detach().float().cpu().numpy()
            self._shown = time.monotonic()

    def advance(self) -> int:
        if self.run.round():
            self.result = self.run.result
            self.image = self.result[0].detach().float().cpu().numpy()
            self.step = self.steps
        return 0

    def ended(self) -> None:
        self.run.stop()


class UnitJob(SteppedJob):
    """Activation maximization of ``layer``'s channel ``channel`` (the ``jitter`` preset), in rounds of
    ``round_steps``: the picture ends as ``interpret.actmax`` makes it in one call."""

    kind = "actmax"

    def __init__(self, handle: ModelHandle, layer: str, channel: int, *, steps: Steps = 128,
                 round_steps: Steps = 16) -> None:
        check_call(UnitJob.__init__, {"steps": steps, "round_steps": round_steps})
        handle.layer(layer)
        self.layer, self.channel = layer, channel
        self.still: str | None = None
        super().__init__(handle, steps, round_steps)

    def call(self) -> torch.Tensor:
        return interpret.actmax(self.handle, unit=f"{self.layer}:{self.channel}", preset="jitter", steps=self.steps,
                                progress=False)

    def completed(self) -> None:
        self.still = unmoved(self.handle, f"{self.layer}:{self.channel}", self.result)[0]

    def describe(self) -> dict[str, Any]:
        """The unit, and ``still``: why the finished picture is not one of what the unit likes (None when it is
        or until it is finished)."""
        return {"layer": self.layer, "channel": self.channel, "still": self.still}

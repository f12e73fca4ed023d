"""Long work as jobs: run on the compute queue's scheduler one round at a time, after every interactive request
(:meth:`ComputeQueue.submit_round`), so a request waits for at most one round, the latest result can be shown
while the job runs, and a cancel takes effect at the next round. Every work size has a declared bound
(:data:`MAX_STEPS`); a job's status tells its cost (steps, rounds, seconds estimated from the rounds run).

:class:`Job` is the mechanism; each kind of job (activation maximization of a unit here, the atlas of a layer in
:mod:`explorer.atlas_job`, inversion, DeepDream and attacks in :mod:`explorer.optimize_jobs`) says what one round
does.

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
from cnnviz.zoo.core import Between, check_call
from cnnviz.zoo.handle import ModelHandle

OVER = ("done", "cancelled", "failed")
MAX_STEPS = 5000  # the most steps (of a unit's or an optimization's run) a request may ask for
ROUND_SECONDS = 0.25  # a round stops after about this long: the most a request made meanwhile waits

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
                "rounds": self.rounds, "cost": self.cost(), "error": self.error, **self.describe(),
                "image": f"/api/jobs/{self.id}/image.png" if self.image is not None else None}


class UnitJob(Job):
    """Activation maximization of ``layer``'s channel ``channel``, in rounds of ``round_steps``.

    The first round starts from the preset's noise; each later one continues from the last picture
    (the ``jitter`` preset takes starting images), so the picture improves round by round.
    """

    kind = "actmax"

    def __init__(self, handle: ModelHandle, layer: str, channel: int, *, steps: Steps = 128,
                 round_steps: Steps = 16) -> None:
        check_call(UnitJob.__init__, {"steps": steps, "round_steps": round_steps})
        handle.layer(layer)
        super().__init__(steps, round_steps)
        self.handle, self.layer, self.channel = handle, layer, channel

    def advance(self) -> int:
        steps = min(self.round_steps, self.steps - self.step)
        start = torch.from_numpy(self.image)[None] if self.image is not None else None
        picture = interpret.actmax(self.handle, start, unit=f"{self.layer}:{self.channel}", preset="jitter",
                                   steps=steps, seed=self.step, progress=False)
        self.image = picture[0].detach().cpu().numpy()
        return steps

    def describe(self) -> dict[str, Any]:
        return {"layer": self.layer, "channel": self.channel}

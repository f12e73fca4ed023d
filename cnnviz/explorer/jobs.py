"""Long work as jobs: run on the compute queue one round at a time, so other requests are served between
rounds, the latest result can be shown while it runs, and a cancel takes effect at the next round.

:class:`Job` is the mechanism; each kind of job (activation maximization of a unit here, the atlas of a layer in
:mod:`explorer.atlas_job`, inversion, DeepDream and attacks in :mod:`explorer.optimize_jobs`) says what one round
does.

Example:
    >>> from cnnviz import zoo
    >>> from cnnviz.explorer.compute_queue import ComputeQueue
    >>> handle = zoo.load("fashion_cnn", device="cpu")
    >>> queue = ComputeQueue("cpu")
    >>> job = UnitJob(handle, "features.block2", 3, steps=8, round_steps=4)
    >>> job.start(queue).result() is None, job.state, job.step
    (True, 'done', 8)
    >>> queue.close()
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import Future
from typing import Any

import numpy as np
import torch

from cnnviz import interpret
from cnnviz.explorer.compute_queue import ComputeQueue
from cnnviz.zoo.core import PositiveInt, check_call
from cnnviz.zoo.handle import ModelHandle

OVER = ("done", "cancelled", "failed")


class Job:
    """Work of ``steps`` steps done in rounds on a compute queue; subclasses define :meth:`advance`.

    Attributes:
        state: queued, running, done, cancelled or failed.
        step: steps done so far (of ``steps``).
        image: the latest picture ``(C, H, W)`` in [0, 1], for jobs that make one.
    """

    kind = "job"

    def __init__(self, steps: int) -> None:
        self.id = uuid.uuid4().hex
        self.steps = steps
        self.step = 0
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

    def start(self, queue: ComputeQueue) -> Future[None]:
        """Queue the first round; each round queues the next."""
        self._queue = queue
        queue.submit(self._round)
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
        try:
            done = self.advance()  # before reading self.step: a round may move it itself
            self.step += done
            if self.step >= self.steps and not self._cancel.is_set():
                self.completed()
        except Exception as exc:  # reported on the job's status, as the one line it says
            self.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self._finish("failed")
            return
        if self.step >= self.steps:
            self._finish("done")
        else:
            self._queue.submit(self._round)

    def _finish(self, state: str) -> None:
        self.state = "cancelled" if self._cancel.is_set() and state != "failed" else state
        if not self._done.done():
            self._done.set_result(None)

    def describe(self) -> dict[str, Any]:
        """What this kind of job adds to its status."""
        return {}

    def status(self) -> dict[str, Any]:
        """What the page polls: state, progress, the error if any, and the latest picture's URL."""
        return {"id": self.id, "kind": self.kind, "state": self.state, "step": self.step, "steps": self.steps,
                "error": self.error, **self.describe(),
                "image": f"/api/jobs/{self.id}/image.png" if self.image is not None else None}


class UnitJob(Job):
    """Activation maximization of ``layer``'s channel ``channel``, in rounds of ``round_steps``.

    The first round starts from the preset's noise; each later one continues from the last picture
    (the ``jitter`` preset takes starting images), so the picture improves round by round.
    """

    kind = "actmax"

    def __init__(self, handle: ModelHandle, layer: str, channel: int, *, steps: PositiveInt = 128,
                 round_steps: PositiveInt = 16) -> None:
        check_call(UnitJob.__init__, {"steps": steps, "round_steps": round_steps})
        handle.layer(layer)
        super().__init__(steps)
        self.handle, self.layer, self.channel = handle, layer, channel
        self.round_steps = round_steps

    def advance(self) -> int:
        steps = min(self.round_steps, self.steps - self.step)
        start = torch.from_numpy(self.image)[None] if self.image is not None else None
        picture = interpret.actmax(self.handle, start, unit=f"{self.layer}:{self.channel}", preset="jitter",
                                   steps=steps, seed=self.step, progress=False)
        self.image = picture[0].detach().cpu().numpy()
        return steps

    def describe(self) -> dict[str, Any]:
        return {"layer": self.layer, "channel": self.channel}

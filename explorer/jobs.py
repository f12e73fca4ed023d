"""Long optimizations (activation maximization of a unit) as jobs: run on the compute queue a few steps at a
time, so other requests are served between rounds, the latest picture can be shown while it runs, and a
cancel takes effect at the next round.

Example:
    >>> import zoo
    >>> from explorer.compute_queue import ComputeQueue
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

import interpret
from explorer.compute_queue import ComputeQueue
from zoo.checks import PositiveInt, check_call
from zoo.handle import ModelHandle


class UnitJob:
    """Activation maximization of ``layer``'s channel ``channel``, in rounds of ``round_steps``.

    The first round starts from the preset's noise; each later one continues from the last picture
    (the ``jitter`` preset takes starting images), so the picture improves round by round.
    """

    def __init__(self, handle: ModelHandle, layer: str, channel: int, *, steps: PositiveInt = 128,
                 round_steps: PositiveInt = 16) -> None:
        check_call(UnitJob.__init__, {"steps": steps, "round_steps": round_steps})
        handle.layer(layer)
        self.id = uuid.uuid4().hex
        self.handle, self.layer, self.channel = handle, layer, channel
        self.steps, self.round_steps = steps, round_steps
        self.step = 0
        self.state = "queued"  # queued, running, done, cancelled, failed
        self.error: str | None = None
        self.image: np.ndarray | None = None  # (C, H, W) in [0, 1]
        self._cancel = threading.Event()
        self._done: Future[None] = Future()

    def start(self, queue: ComputeQueue) -> Future[None]:
        """Queue the first round; each round queues the next."""
        self._queue = queue
        queue.submit(self._round)
        return self._done

    def cancel(self) -> None:
        """Stop at the next round (the picture so far stays)."""
        self._cancel.set()
        if self.state == "queued" and self.step == 0 and not self._done.done():
            self.state = "cancelled"

    def _round(self) -> None:
        if self._cancel.is_set():
            self._finish("cancelled")
            return
        self.state = "running"
        steps = min(self.round_steps, self.steps - self.step)
        start = torch.from_numpy(self.image)[None] if self.image is not None else None
        try:
            picture = interpret.actmax(self.handle, start, unit=f"{self.layer}:{self.channel}", preset="jitter",
                                       steps=steps, seed=self.step, progress=False)
        except Exception as exc:  # reported on the job's status, as the one line it says
            self.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self._finish("failed")
            return
        self.image = picture[0].detach().cpu().numpy()
        self.step += steps
        if self.step >= self.steps:
            self._finish("done")
        else:
            self._queue.submit(self._round)

    def _finish(self, state: str) -> None:
        self.state = "cancelled" if self._cancel.is_set() and state != "failed" else state
        if not self._done.done():
            self._done.set_result(None)

    def status(self) -> dict[str, Any]:
        """What the page polls: state, progress and the error, if any."""
        return {"id": self.id, "kind": "actmax", "layer": self.layer, "channel": self.channel, "state": self.state,
                "step": self.step, "steps": self.steps, "error": self.error,
                "image": f"/api/jobs/{self.id}/image.png" if self.image is not None else None}

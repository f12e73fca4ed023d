"""Inversion, DeepDream and attacks as jobs: one call of the Python API on the compute queue, watched step by
step (:func:`interpret.optimize.watch_steps`), so the page shows the picture while it changes and a cancel stops
the run at the next step. The final picture is the Python API's own answer for the same options.

Example:
    >>> from cnnviz import zoo
    >>> from cnnviz.explorer.compute_queue import ComputeQueue
    >>> handle, queue = zoo.load("fashion_cnn", device="cpu"), ComputeQueue("cpu")
    >>> batch = handle.prepare([zoo.load_image("coffee", channels=1)])
    >>> job = OptimizeJob(handle, "pgd", batch, None, None, {"steps": 4})
    >>> job.start(queue).result(); job.state, job.step, job.image.shape
    ('done', 4, (1, 28, 28))
    >>> queue.close()
"""

from __future__ import annotations

import time
from typing import Any

import torch

from cnnviz import interpret
from cnnviz.explorer.jobs import Job
from cnnviz.explorer.options import check_options
from cnnviz.interpret.optimize import watch_steps
from cnnviz.zoo.core import CnnvizError
from cnnviz.zoo.handle import ModelHandle

OPTIMIZATIONS = {"invert": "feature inversion: an image the layer sees as this one",
                 "dream": "DeepDream: the image, changed to excite the layer more",
                 "pgd": "PGD attack: the smallest change that moves the prediction (toward the class, or away)"}
FIXED = {"progress": False}  # options the server sets itself
HIDDEN = {"progress", "batch_size", "stop_on_success", "tile"}
LIVE_SECONDS = 0.2  # the picture shown is refreshed at most this often


class Stopped(Exception):
    """Raised inside the watched run when the job is cancelled."""


def optimization(name: object) -> interpret.Method:
    """The registered optimization ``name`` (one the explorer runs as a job)."""
    if name not in OPTIMIZATIONS:
        raise CnnvizError(f"unknown optimization {name!r}: choose from {', '.join(OPTIMIZATIONS)}")
    return interpret.get_method(str(name))


def page_options(method: interpret.Method, given: Any) -> dict[str, Any]:
    """``given`` checked against the method's declared options and ranges (the server's own are refused)."""
    checked = check_options(method, given)
    hidden = sorted(HIDDEN & set(checked))
    if hidden:
        raise CnnvizError(f"{', '.join(hidden)} cannot be set here: the server sets it")
    return checked


def total_steps(method: interpret.Method, options: dict[str, Any]) -> int:
    """Engine steps the run takes (DeepDream: steps per octave times octaves)."""
    defaults = {name: p.default for name, p in method.options().items()}
    steps = options.get("steps", defaults["steps"])
    return steps * options.get("octaves", defaults["octaves"]) if method.name == "dream" else steps


class OptimizeJob(Job):
    """``method`` (invert, dream or pgd) on one prepared image, as ``method.fn(handle, batch, target, layer=...,
    **options)`` runs it."""

    def __init__(self, handle: ModelHandle, name: str, batch: torch.Tensor, target: int | None, layer: str | None,
                 options: dict[str, Any]) -> None:
        self.method = optimization(name)
        self.options = page_options(self.method, options)
        super().__init__(total_steps(self.method, self.options))
        self.kind = self.method.name
        self.handle, self.batch, self.target, self.layer = handle, batch, target, layer
        self.prediction: dict[str, Any] | None = None
        self._shown = 0.0

    def call(self) -> torch.Tensor:
        """The Python API call this job makes."""
        layer = {"layer": self.layer} if self.layer is not None and self.method.name != "pgd" else {}
        return self.method.fn(self.handle, self.batch, self.target, **layer, **self.options, **FIXED)

    def _watch(self, image: torch.nn.Module, step: int) -> None:
        if self._cancel.is_set():
            raise Stopped
        self.step = min(self.step + 1, self.steps - 1)
        if time.monotonic() - self._shown > LIVE_SECONDS:
            with torch.no_grad():
                self.image = image()[0].detach().float().cpu().numpy()
            self._shown = time.monotonic()

    def advance(self) -> int:
        try:
            with watch_steps(self._watch):
                result = self.call()
        except Stopped:
            return 0  # the next round sees the cancel
        self.image = result[0].detach().float().cpu().numpy()
        with torch.no_grad():
            probs = self.handle(result).softmax(-1)[0]
        best = int(probs.argmax())
        self.prediction = {"index": best, "name": self.handle.class_name(best), "probability": float(probs[best])}
        self.step = self.steps
        return 0

    def describe(self) -> dict[str, Any]:
        return {"method": self.method.name, "model": self.handle.name, "options": self.options,
                "prediction": self.prediction}

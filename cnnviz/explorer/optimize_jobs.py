"""Inversion, DeepDream and attacks as jobs: one call of the Python API, run in rounds (:mod:`explorer.stepped`)
so the compute queue serves other requests between rounds; the page shows the picture while it changes and a
cancel stops the run at the next round. The final picture is the Python API's own answer for the same options.

The work-size options (``steps``, ``octaves``) have upper bounds here (:data:`LIMITS`), declared in the options'
schemas the page and the OpenAPI show, and checked before a job starts.

Example:
    >>> from cnnviz import zoo
    >>> from cnnviz.explorer.compute_queue import ComputeQueue
    >>> handle, queue = zoo.load("fashion_cnn", device="cpu"), ComputeQueue("cpu")
    >>> batch = handle.prepare([zoo.load_image("coffee", channels=1)])
    >>> job = OptimizeJob(handle, "pgd", batch, None, None, {"steps": 4}, round_steps=2)
    >>> job.start(queue).result(); job.state, job.step, job.rounds, job.image.shape
    ('done', 4, 2, (1, 28, 28))
    >>> optimization("pgd").options()["steps"].maximum == MAX_STEPS
    True
    >>> queue.close()
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from cnnviz import interpret
from cnnviz.explorer.jobs import MAX_STEPS, SteppedJob
from cnnviz.explorer.options import check_options
from cnnviz.zoo.core import Between, CnnvizError
from cnnviz.zoo.handle import ModelHandle

OPTIMIZATIONS = {"invert": "feature inversion: an image the layer sees as this one",
                 "dream": "DeepDream: the image, changed to excite the layer more",
                 "pgd": "PGD attack: the smallest change that moves the prediction (toward the class, or away)"}
LIMITS = {"steps": MAX_STEPS, "octaves": 8}  # the work-size options' upper bounds on this server
FIXED = {"progress": False}  # options the server sets itself
HIDDEN = {"progress", "batch_size", "stop_on_success", "tile"}
ROUND_STEPS = 16


@dataclasses.dataclass(frozen=True)
class Bounded(interpret.Method):
    """A registered method whose work-size options have this server's upper bounds (:data:`LIMITS`)."""

    def options(self) -> dict[str, interpret.OptionSpec]:
        specs = super().options()
        for name, high in LIMITS.items():
            if name in specs:
                bounds = specs[name].bounds or Between()
                specs[name] = dataclasses.replace(specs[name], bounds=dataclasses.replace(bounds, high=high))
        return specs


def optimization(name: object) -> Bounded:
    """The registered optimization ``name`` (one the explorer runs as a job), with its bounded options."""
    if name not in OPTIMIZATIONS:
        raise CnnvizError(f"unknown optimization {name!r}: choose from {', '.join(OPTIMIZATIONS)}")
    method = interpret.get_method(str(name))
    return Bounded(**{field.name: getattr(method, field.name) for field in dataclasses.fields(method)})


def page_options(method: interpret.Method, given: Any) -> dict[str, Any]:
    """``given`` checked against the method's declared options and ranges, the bounds of :data:`LIMITS`
    included (the server's own options are refused)."""
    checked = check_options(method, given)
    hidden = sorted(HIDDEN & set(checked))
    if hidden:
        raise CnnvizError(f"{', '.join(hidden)} cannot be set here: the server sets it")
    specs = method.options()
    for name in LIMITS.keys() & checked.keys():
        bounds = specs[name].bounds
        if bounds is not None:
            bounds.check(name, checked[name], int)
    return checked


def total_steps(method: interpret.Method, options: dict[str, Any]) -> int:
    """Engine steps the run takes (DeepDream: steps per octave times octaves)."""
    defaults = {name: p.default for name, p in method.options().items()}
    steps = options.get("steps", defaults["steps"])
    return steps * options.get("octaves", defaults["octaves"]) if method.name == "dream" else steps


def planned_cost(method: interpret.Method, options: dict[str, Any], round_steps: int = ROUND_STEPS) -> dict[str, int]:
    """What a job of ``method`` with ``options`` will take, before it starts: engine ``steps``, at most
    ``round_steps`` a round, and at least ``rounds_total`` rounds (a round also stops at :data:`explorer.jobs.ROUND_SECONDS`).

    Example:
        >>> planned_cost(optimization("dream"), {"steps": 10, "octaves": 3}, 8)
        {'steps': 30, 'round_steps': 8, 'rounds_total': 4}
    """
    steps = total_steps(method, options)
    return {"steps": steps, "round_steps": round_steps, "rounds_total": math.ceil(steps / round_steps)}


class OptimizeJob(SteppedJob):
    """``method`` (invert, dream or pgd) on one prepared image, as ``method.fn(handle, batch, target, layer=...,
    **options)`` runs it, ``round_steps`` engine steps (or :data:`explorer.jobs.ROUND_SECONDS`) a round."""

    def __init__(self, handle: ModelHandle, name: str, batch: torch.Tensor, target: int | None, layer: str | None,
                 options: dict[str, Any], *, round_steps: int = ROUND_STEPS) -> None:
        self.method = optimization(name)
        self.options = page_options(self.method, options)
        self.kind = self.method.name
        self.batch, self.target, self.layer = batch, target, layer
        self.prediction: dict[str, Any] | None = None
        super().__init__(handle, total_steps(self.method, self.options), round_steps)

    def call(self) -> torch.Tensor:
        layer = {"layer": self.layer} if self.layer is not None and self.method.name != "pgd" else {}
        return self.method.fn(self.handle, self.batch, self.target, **layer, **self.options, **FIXED)

    def completed(self) -> None:
        assert self.result is not None
        with torch.no_grad():
            probs = self.handle(self.result).softmax(-1)[0]
        best = int(probs.argmax())
        self.prediction = {"index": best, "name": self.handle.class_name(best), "probability": float(probs[best])}

    def describe(self) -> dict[str, Any]:
        return {"method": self.method.name, "model": self.handle.name, "options": self.options,
                "prediction": self.prediction}

"""A call of the Python API run in rounds: the call runs on a thread of its own, and the engine's step watcher
(:func:`interpret.optimize.watch_steps`) parks it after each round, so the compute queue serves other requests
between rounds while the one run of the engine goes on where it stopped.

While the call is parked, what it changed of the world is put back: the random number generators and the
model's modes and frozen parameters (the engine's ``preserve``) are swapped for the caller's on every pause and
swapped in again on every resume. Requests between rounds see the model as they always do, and the call goes on
exactly as if it had never paused, so its answer equals one uninterrupted call with the same seed.

Example:
    >>> import torch
    >>> from cnnviz import interpret, zoo
    >>> handle = zoo.load("fashion_cnn", device="cpu")
    >>> images = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    >>> run = Stepped(lambda: interpret.pgd(handle, images, steps=5, progress=False), handle, round_steps=2)
    >>> [run.round() for _ in range(3)], run.steps
    ([False, False, True], 5)
    >>> torch.equal(run.result, interpret.pgd(handle, images, steps=5, progress=False))
    True
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from cnnviz.interpret.optimize import watch_steps


class Stopped(Exception):
    """Raised inside the parked call when it is stopped; ends it as any error would (state restored)."""


class World:
    """What a parked call holds that others share: the random generators, the model's train/eval flags, its
    parameters' ``requires_grad`` and ``.grad``. :meth:`take` records them; :meth:`put` sets them back."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.take()

    def take(self) -> World:
        self.rng = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
        self.modes = [(module, module.training) for module in self.model.modules()]
        self.params = [(p, p.requires_grad, p.grad) for p in self.model.parameters()]
        return self

    def put(self) -> None:
        torch.set_rng_state(self.rng)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)
        for module, training in self.modes:
            module.training = training
        for p, requires_grad, grad in self.params:
            p.requires_grad_(requires_grad)
            p.grad = grad


class Stepped:
    """``call()`` run ``round_steps`` engine steps (or ``round_seconds``, whichever comes first) per
    :meth:`round`, on ``model``; ``on_step(image, steps)`` is called after every step (``steps`` done so far).
    With ``total`` (the steps the call takes), the round that does the last step also finishes the call.

    Attributes:
        steps: engine steps done so far.
        result: what ``call`` returned, once :meth:`round` has said True.
    """

    def __init__(self, call: Callable[[], Any], model: nn.Module, *, round_steps: int, round_seconds: float = 1e9,
                 total: int | None = None, on_step: Callable[[nn.Module, int], None] | None = None) -> None:
        self.call, self.model, self.round_steps, self.round_seconds = call, model, round_steps, round_seconds
        self.total = total
        self.on_step = on_step
        self.steps = 0
        self.result: Any = None
        self.over = False
        self._error: BaseException | None = None
        self._stop = False
        self._go = threading.Semaphore(0)
        self._parked = threading.Semaphore(0)
        self._thread: threading.Thread | None = None
        self._outside: World | None = None
        self._began, self._first = 0.0, 0

    def round(self) -> bool:
        """Run one round here (the caller waits); True once the call has returned. Raises the call's error."""
        if self.over:
            return True
        self._began, self._first = time.monotonic(), self.steps
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="cnnviz-stepped", daemon=True)
            self._thread.start()
        else:
            self._go.release()
        self._parked.acquire()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return self.over

    def stop(self) -> None:
        """End a parked call (it raises :class:`Stopped` inside and cleans up as on any error)."""
        if self._thread is not None and not self.over:
            self._stop = True
            self._go.release()
            self._parked.acquire()
            self._error = None

    def _run(self) -> None:
        self._outside = World(self.model)
        try:
            with watch_steps(self._step):
                self.result = self.call()
        except BaseException as exc:  # handed to the caller of round()
            self._error = exc
        finally:
            self.over = True
            self._outside.put()  # what the caller had when this round began (the call's own guard put it back)
            self._parked.release()

    def _step(self, image: nn.Module, step: int) -> None:
        self.steps += 1
        if self.on_step is not None:
            self.on_step(image, self.steps)
        if self._stop:
            raise Stopped
        if (self.steps - self._first < self.round_steps and time.monotonic() - self._began < self.round_seconds) \
                or self.steps == self.total:
            return
        assert self._outside is not None
        inside = World(self.model)
        self._outside.put()
        self._parked.release()  # the round is over: the caller goes on, this thread waits
        self._go.acquire()
        self._outside = World(self.model)
        inside.put()
        if self._stop:
            raise Stopped

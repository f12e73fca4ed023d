"""A live view of long optimizations: inside ``with watch_steps(callback)``, every step of every optimization
the engine runs in this thread calls ``callback(image, step)`` with the image parameterization (``image()`` gives
the current pictures). An exception the callback raises stops the run; the engine restores the model and the
random state as it does for any error. Activation maximization, inversion, DeepDream and the attacks all run on
the engine, so one watcher sees them all.

Example:
    >>> import torch
    >>> from cnnviz import interpret, zoo
    >>> handle = zoo.load("fashion_cnn", device="cpu")
    >>> seen = []
    >>> with watch_steps(lambda image, step: seen.append(step)):
    ...     _ = interpret.pgd(handle, torch.rand(1, 1, 28, 28), steps=3, progress=False)
    >>> seen
    [0, 1, 2]
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator

from torch import nn

Watcher = Callable[[nn.Module, int], None]
_WATCHERS: contextvars.ContextVar[tuple[Watcher, ...]] = contextvars.ContextVar("cnnviz_step_watchers", default=())


@contextlib.contextmanager
def watch_steps(callback: Watcher) -> Iterator[None]:
    """Call ``callback(image, step)`` after each optimization step run inside the block."""
    token = _WATCHERS.set((*_WATCHERS.get(), callback))
    try:
        yield
    finally:
        _WATCHERS.reset(token)


def step_watchers() -> tuple[Watcher, ...]:
    """The watchers active here (the engine calls each after every step)."""
    return _WATCHERS.get()

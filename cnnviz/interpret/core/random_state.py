"""Random state that libraries draw from the global generators, seeded for a block and then put back.

Example:
    >>> import numpy as np
    >>> before = np.random.get_state()[1][0]
    >>> with numpy_and_python_rng(0):
    ...     first = np.random.rand()
    >>> with numpy_and_python_rng(0):
    ...     again = np.random.rand()
    >>> bool(first == again), bool(np.random.get_state()[1][0] == before)
    (True, True)
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np


@contextmanager
def numpy_and_python_rng(seed: int | None) -> Iterator[None]:
    """Seed numpy's and Python's global generators for the block (captum draws from both), then restore them."""
    if seed is None:
        yield
        return
    numpy_state, python_state = np.random.get_state(), random.getstate()
    np.random.seed(seed)
    random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)

"""The audit's small numeric problems (k-NN graphs, eigenvalues, spectral clustering, t-SNE, NMF) on one thread.

Their OpenMP and BLAS thread pools spin while they wait; beside any other busy thread (a server's requests, a
second job, torch) a 200-map t-SNE measured 14.6 s on 2 threads against 0.32 s on one (2-core CPU, 2026-12-07).
The limits are restored on leaving, also when the work raises.

Example:
    >>> from threadpoolctl import threadpool_info
    >>> before = [pool["num_threads"] for pool in threadpool_info()]
    >>> @one_thread()
    ... def inside():
    ...     return {pool["num_threads"] for pool in threadpool_info()}
    >>> inside() <= {1}, [pool["num_threads"] for pool in threadpool_info()] == before
    (True, True)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def one_thread() -> Iterator[None]:
    """Every OpenMP and BLAS pool limited to one thread inside (a context manager and a decorator)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield

"""A queue of jobs dealt to the rows of one optimization run, so no row idles while a slow one finishes.

Fooling images, actmax with ``until`` and attacks that stop on success all
optimize many images that finish at different steps. Run in fixed chunks,
each chunk waits for its slowest image. :class:`RowQueue` keeps the engine's
batch full instead: it hands :func:`interpret.optimize.engine.optimize` its ``until``
and ``refill`` callbacks; as soon as a row's job passes (or runs out of
steps) the row takes the next pending job.

The caller says what a job is with three callbacks:

- ``load(row, job)``: put job ``job``'s start into row ``row`` (pixels, target, clean image);
- ``passed(context)``: a per-row bool tensor, from the context of the step just evaluated;
- ``keep(rows, jobs, context)``: store the result of the rows in the CPU bool mask ``rows``
  (working on jobs ``jobs``), from ``context``: called once per job, at the first step it
  passed, or with the last evaluated step when it ran out.

``taken[job]`` is the number of updates after which the job first passed (-1: never).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from cnnviz.interpret.optimize.objectives import Context


class RowQueue:
    """``jobs`` jobs through ``rows`` rows; pass :meth:`until` and :meth:`refill` to ``engine.optimize``.

    Example:
        >>> import torch
        >>> loaded = []
        >>> queue = RowQueue(3, 2, load=lambda row, job: loaded.append((row, job)),
        ...                  passed=lambda context: torch.ones(2, dtype=torch.bool),
        ...                  keep=lambda rows, jobs, context: None, progress=False)
        >>> queue.start()
        >>> loaded
        [(0, 0), (1, 1)]
    """

    def __init__(self, jobs: int, rows: int, *, load: Callable[[int, int], None],
                 passed: Callable[[Context], torch.Tensor],
                 keep: Callable[[torch.Tensor, torch.Tensor, Context], None],
                 desc: str = "optimizing", progress: bool = True) -> None:
        self.jobs, self.rows = jobs, rows
        self._load, self._passed, self._keep = load, passed, keep
        self._pending = iter(range(jobs))
        self.slot = torch.full((rows,), -1, dtype=torch.long)  # the job each row works on (-1: none)
        self.age = torch.zeros(rows, dtype=torch.long)  # updates applied to the row's current job
        self.captured = torch.zeros(rows, dtype=torch.bool)
        self.taken = torch.full((jobs,), -1, dtype=torch.long)
        self._latest: Context | None = None
        self._bar = tqdm(total=jobs, desc=desc, unit="image", leave=False, disable=not progress)

    def start(self) -> None:
        """Load the first jobs into every row (rows beyond the job count stay idle)."""
        for row in range(self.rows):
            self._next(row)

    def _next(self, row: int) -> bool:
        job = next(self._pending, None)
        if job is None:
            self.slot[row] = -1
            return False
        self.slot[row], self.age[row], self.captured[row] = job, 0, False
        self._load(row, job)
        return True

    def until(self, context: Context) -> torch.Tensor:
        """The engine's stop test: keeps newly passed rows; idle rows count as done."""
        passed = self._passed(context).detach().cpu() & (self.slot >= 0)
        new = passed & ~self.captured
        if bool(new.any()):
            self._keep(new, self.slot[new], context)
            self.taken[self.slot[new]] = self.age[new]
        self._latest = context
        self.captured |= passed
        self.age += 1
        return passed | (self.slot < 0)

    def refill(self, done: torch.Tensor) -> torch.Tensor:
        """The engine's refill: finishes the done rows' jobs and loads the next ones; returns restarted rows."""
        ran_out = done & (self.slot >= 0) & ~self.captured
        if bool(ran_out.any()) and self._latest is not None:  # out of steps: the last evaluated step
            self._keep(ran_out, self.slot[ran_out], self._latest)
        restarted = torch.zeros_like(done)
        for row in done.nonzero().flatten().tolist():
            if self.slot[row] >= 0:
                self._bar.update()
            restarted[row] = self._next(row)
        return restarted

    def close(self) -> None:
        """Close the progress bar."""
        self._bar.close()

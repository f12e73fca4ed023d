"""A compiled forward pass for forward-only work, used when the job repays the compile.

Occlusion, RISE, Score-CAM, deletion/insertion and the other masked-input
methods feed the network thousands of rows in fixed-size chunks and never
differentiate. :func:`forward_runner` gives them a callable that runs those
chunks through ``torch.compile`` (fp32, or the handle's precision) instead of
eager PyTorch, with three rules:

- **One shape.** A short last chunk is padded to the chunk size, so one
  compile serves the whole job (``dynamic=False``: no second, dynamic graph).
- **A persistent cache.** Inductor's cache lives under :func:`cache_dir`, so
  the next run of the same model starts warm (seconds instead of half a minute).
- **Compile only when it pays** (``compile="auto"``, the default). The first two
  chunks run eagerly and the second is timed; the runner compiles when the
  time the rest of the job would save exceeds the compile cost measured last
  time for this model and shape (:class:`CompileCosts`; a cold compile is
  assumed when nothing was measured yet). ``"on"`` always compiles, ``"off"``
  never does.

Results equal the eager path within float rounding (``tests/test_compiled.py``
holds the tolerance); gradient methods never use this (on the CPU the compiled
forward+backward measured slower than eager, BENCHMARKS.md).

Example:
    >>> import torchvision
    >>> handle = ModelHandle(torchvision.models.resnet18(num_classes=4).eval(), input_size=32)
    >>> run = forward_runner(handle, rows=6, batch_size=4, compile="off")
    >>> with torch.no_grad():
    ...     run(torch.rand(4, 3, 32, 32)).shape, run(torch.rand(2, 3, 32, 32)).shape
    (torch.Size([4, 4]), torch.Size([2, 4]))
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
import torch

from cnnviz.zoo.core.errors import CnnvizError
from cnnviz.zoo.handle.handle import COMPILE_MODES, CompileMode, ModelHandle
from cnnviz.zoo.core.jsonfile import write_json


# Assumed before this machine has compiled a model of this shape: a cold inductor compile of
# efficientnet_lite0 took 38 s on 2 CPU cores (2026-12-01), 4-6 s from the warm on-disk cache (so a
# warm compile costs about WARM_FRACTION of a cold one); the compiled fp32 forward ran 1.7x eager
# channels-last at batch 8. Measured values replace these after the first compile.
COLD_COMPILE_SECONDS = 40.0
WARM_FRACTION = 0.15
ASSUMED_SPEEDUP = 1.3
# Compile only when the saving beats the cost by this margin: timings of a shared machine drift.
MARGIN = 1.25


def cache_dir() -> Path:
    """Where cnnviz keeps caches: ``$CNNVIZ_CACHE``, else ``$XDG_CACHE_HOME/cnnviz``, else ``~/.cache/cnnviz``."""
    if os.environ.get("CNNVIZ_CACHE"):
        return Path(os.environ["CNNVIZ_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cnnviz"


@dataclass
class CompileCost:
    """What compiling one model at one chunk shape cost and gained, as measured on this machine.

    ``warm``: whether that compile found its kernels in inductor's on-disk cache. After a cold
    compile the cache is warm, so the next one is expected to cost ``WARM_FRACTION`` as much.
    """

    compile_seconds: float
    eager_row_seconds: float
    compiled_row_seconds: float
    warm: bool = True

    @property
    def next_compile_seconds(self) -> float:
        """What the next compile of this model and shape is expected to cost."""
        return self.compile_seconds if self.warm else self.compile_seconds * WARM_FRACTION

    @property
    def speedup(self) -> float:
        """Eager time per row over compiled time per row."""
        return self.eager_row_seconds / max(self.compiled_row_seconds, 1e-12)


class CompileCosts:
    """The measured :class:`CompileCost` per model signature, kept in ``cache_dir()/compile_costs.json``."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cache_dir() / "compile_costs.json"

    def read(self) -> dict[str, CompileCost]:
        """Every record; an unreadable file counts as none (it is only a cache)."""
        try:
            data = json.loads(self.path.read_text())
            return {key: CompileCost(**value) for key, value in data.items()}
        except (OSError, ValueError, TypeError):
            return {}

    def get(self, key: str) -> CompileCost | None:
        """The record for ``key``, or None."""
        return self.read().get(key)

    def put(self, key: str, cost: CompileCost) -> None:
        """Store ``cost`` under ``key`` (atomically; a read-only cache is skipped silently)."""
        records = self.read()
        records[key] = cost
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_json(self.path, {k: asdict(v) for k, v in records.items()})
        except OSError:
            pass


def signature(handle: ModelHandle, shape: tuple[int, ...], part: str = "logits") -> str:
    """A key for the compile of ``part`` of ``handle`` (its logits, or the network up to a layer) at batch
    ``shape``: the same model, part, shape, precision, device and torch."""
    params = sum(p.numel() for p in handle.model.parameters())
    return "|".join([handle.name, type(handle.model).__qualname__, str(params), part, "x".join(map(str, shape)),
                     handle.precision, handle.device.type, torch.__version__])


def should_compile(rows_left: int, eager_row_seconds: float, cost: CompileCost | None) -> bool:
    """Whether compiling now saves more time on ``rows_left`` rows than it costs."""
    compile_seconds = cost.next_compile_seconds if cost else COLD_COMPILE_SECONDS
    speedup = cost.speedup if cost else ASSUMED_SPEEDUP
    saved = rows_left * eager_row_seconds * (1 - 1 / speedup)
    return saved > MARGIN * compile_seconds


def compile_forward(forward: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """``torch.compile`` for one fixed shape, with inductor's cache in :func:`cache_dir` unless set elsewhere."""
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir() / "inductor"))
    return torch.compile(forward, dynamic=False)


class ForwardRunner:
    """Runs forward-only chunks of at most ``batch_size`` rows, eagerly or compiled (see the module doc).

    Compiled forwards are kept on the handle (``handle.compiled``, a plain dict keyed by part and
    shape, so never a submodule), and a later job in the same process reuses them for free.

    Args:
        handle: the model.
        rows: how many rows the whole job will feed (for the ``auto`` decision).
        batch_size: the chunk size; shorter chunks are padded to it when compiled.
        compile: ``auto``, ``on`` or ``off`` (default: the handle's ``compile_mode``).
        costs: where measured compile costs are kept (default: the cache folder).
        part: what the chunks compute: ``logits`` (the handle's forward, the default), or another
            part of the network given by ``eager`` and ``fast``.
        eager: the eager forward of ``part`` (default: the handle).
        fast: the forward to compile (default: the handle's); None with an ``eager`` means the part
            has no compilable form, so the runner stays eager.
    """

    def __init__(self, handle: ModelHandle, rows: int, batch_size: int, compile: CompileMode | None = None,
                 costs: CompileCosts | None = None, *, part: str = "logits",
                 eager: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 fast: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        mode = compile or handle.compile_mode
        if mode not in COMPILE_MODES:
            raise CnnvizError(f"unknown compile mode {mode!r}: choose from {', '.join(COMPILE_MODES)}")
        if eager is not None and fast is None:
            mode = "off"
        self.handle, self.batch_size, self.mode = handle, batch_size, mode
        self.rows_left = max(rows, handle.compiled.job_rows)  # a job of many calls decides for all of them
        self.part, self.eager = part, eager or handle
        self.fast = fast if eager is not None else handle.forward
        self.costs = costs or CompileCosts()
        self.calls = 0
        self.key: tuple[str, tuple[int, ...]] = (part, ())
        self.eager_row_seconds: float | None = None
        self.compiled: Callable[[torch.Tensor], torch.Tensor] | None = None
        self.compile_pending = False  # the next compiled call compiles: time it and keep the cost
        self.decided = mode != "auto"

    @property
    def using_compiled(self) -> bool:
        """Whether chunks now go through the compiled forward."""
        return self.compiled is not None

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """The part's output for ``batch`` (at most ``batch_size`` rows)."""
        self.calls += 1
        count = batch.shape[0]
        self.rows_left -= count
        self.handle.compiled.job_rows = max(0, self.handle.compiled.job_rows - count)
        if self.calls == 1:
            self._first(batch)
        if self.compiled is not None and count <= self.batch_size:
            return self._compiled_call(batch)
        if self.decided or self.calls != 2:
            return self.eager(batch)
        start = time.perf_counter()
        output = self.eager(batch)
        if output.device.type == "cuda":
            torch.cuda.synchronize(output.device)
        self.eager_row_seconds = (time.perf_counter() - start) / max(count, 1)
        self.decided = True
        if should_compile(self.rows_left, self.eager_row_seconds, self.costs.get(self._signature())):
            self._compile()
        return output

    def _first(self, batch: torch.Tensor) -> None:
        self.key = (self.part, (self.batch_size, *batch.shape[1:]))
        if self.mode != "off" and self.key in self.handle.compiled:  # made earlier in this process: free now
            self.compiled, self.decided = self.handle.compiled[self.key], True
        elif self.mode == "on":
            self._compile()

    def _compile(self) -> None:
        self.compiled = self.handle.compiled[self.key] = compile_forward(self.fast)
        self.compile_pending = True

    def _signature(self) -> str:
        return signature(self.handle, self.key[1], self.part)

    def _compiled_call(self, batch: torch.Tensor) -> torch.Tensor:
        count = batch.shape[0]
        if count < self.batch_size:  # one shape for the whole job: pad with copies of the last row
            batch = torch.cat([batch, batch[-1:].expand(self.batch_size - count, *batch.shape[1:])])
        if not self.compile_pending:
            return self.compiled(batch)[:count]  # type: ignore[misc]
        self.compile_pending = False
        from torch._dynamo.utils import counters  # here: importing dynamo costs time that eager runs never need

        misses = counters["inductor"]["fxgraph_cache_miss"]
        start = time.perf_counter()
        try:
            output = self.compiled(batch)  # type: ignore[misc]
        except Exception as error:  # noqa: BLE001 - any compiler failure: eager still works
            return self._compile_failed(error, batch)[:count]
        self._record(batch, time.perf_counter() - start, warm=counters["inductor"]["fxgraph_cache_miss"] == misses)
        return output[:count]

    def _record(self, batch: torch.Tensor, compile_seconds: float, warm: bool) -> None:
        """Time one more compiled chunk and keep what the compile cost and gained."""
        start = time.perf_counter()
        self.compiled(batch)  # type: ignore[misc]
        if batch.device.type == "cuda":
            torch.cuda.synchronize(batch.device)
        compiled_row = (time.perf_counter() - start) / self.batch_size
        eager_row = self.eager_row_seconds
        if eager_row is None:  # compile="on": no eager chunk was timed, so time one now
            start = time.perf_counter()
            self.eager(batch)
            eager_row = (time.perf_counter() - start) / self.batch_size
        self.costs.put(self._signature(), CompileCost(compile_seconds, eager_row, compiled_row, warm))

    def _compile_failed(self, error: Exception, batch: torch.Tensor) -> torch.Tensor:
        self.compiled = None
        self.handle.compiled.pop(self.key, None)
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        if self.mode == "on":
            raise CnnvizError(f"torch.compile failed on {self.handle.name}: {first_line}; "
                              "run with --compile off (compile='off') for the eager path") from None
        warnings.warn(f"torch.compile failed on {self.handle.name} ({first_line}); running eagerly",
                      RuntimeWarning, stacklevel=3)
        return self.eager(batch)


@contextmanager
def job(handle: ModelHandle, rows: int) -> Iterator[None]:
    """Declare that the block will feed about ``rows`` forward-only rows over many method calls (an
    evaluation over a folder, a gallery), so ``compile="auto"`` weighs the compile against the whole job,
    not against one call.

    Example:
        >>> import torchvision
        >>> handle = ModelHandle(torchvision.models.resnet18(num_classes=4).eval(), input_size=32)
        >>> with job(handle, 10_000):
        ...     ForwardRunner(handle, rows=8, batch_size=8).rows_left
        10000
    """
    previous = handle.compiled.job_rows
    handle.compiled.job_rows = rows
    try:
        yield
    finally:
        handle.compiled.job_rows = previous


def forward_runner(handle: ModelHandle, rows: int, batch_size: int,
                   compile: CompileMode | None = None) -> ForwardRunner:
    """A :class:`ForwardRunner` of the logits for a job of ``rows`` rows in chunks of ``batch_size``."""
    return ForwardRunner(handle, rows, batch_size, compile)

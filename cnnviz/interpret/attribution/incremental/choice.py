"""Which path feeds occlusion's rows: the incremental engine or the full forward pass, measured per job.

The engine pays off where the window is small against the image and the
network's maps are large; it loses where a window covers most of a deep map,
on tiny networks, or against a compiled full pass. So, the way
``--compile auto`` decides, the choice is measured: with ``incremental="auto"``
a few rows are timed on the full pass, the next chunk on the engine, and the
faster per row takes the rest. Where the full pass's first call is not a fair
sample (it compiles with ``--compile on``; a GPU tunes its kernels), one
untimed chunk on the full pass comes first and a whole chunk is timed. A
network the engine cannot follow stays on the full pass, with one warning
line saying why.

Example:
    >>> import torchvision
    >>> handle = as_handle(torchvision.models.resnet18(num_classes=3).eval())
    >>> images = torch.rand(1, 3, 32, 32)
    >>> rows = OcclusionRows(handle, images, torch.zeros_like(images), 8, lambda *row: handle(images), "exact")
    >>> rows.path
    'exact'
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator
from typing import Literal, get_args

import torch

from cnnviz.interpret.attribution.incremental.engine import IncrementalForward, window_values
from cnnviz.interpret.attribution.incremental.graphs import engine_graph
from cnnviz.interpret.core.batching import chunks
from cnnviz.zoo.handle import as_handle

Incremental = Literal["auto", "exact", "approximate", "off"]
INCREMENTAL = get_args(Incremental)
# The approximate mode's largest changed box, as a share of each map's side (Krypton's tau). Measured on
# efficientnet_lite0, 169 windows, chelsea (BENCHMARKS.md): 0.5 -> Spearman 0.69 mean, 0.75 -> 0.90 (SSIM 0.53,
# 36 % of the convolutions' work; over 4 photos Spearman min 0.66 mean 0.83, SSIM min 0.41 mean 0.51, 6.6x today's path), 0.9 -> 0.95
# (SSIM 0.80, 58 %): short of the 0.99 / 0.95 bar, hence opt-in.
APPROXIMATE_SHARE = 0.75
# Rows per engine call when the caller leaves the batch to us: the engine's per-layer work on small boxes and its
# Python walk of the graph pay off over more rows than a full pass's cache-sized batch (efficientnet_lite0,
# 8 px windows, one CPU thread: 64 rows a call ran 1.55x faster per row than 8). Not more than 32: at 64 rows the
# 14 px stage's expanded maps (34 MB a call) pass glibc's 32 MB limit for reusing freed memory, and every call
# pays the kernel's page faults for them (2 threads on an AMD EPYC: 32 rows 0.42 s against 0.55-0.64 s at 169
# windows, 1.8 s against 2.4 s at 729; on an Intel Xeon, 64 rows were 11 % faster than 32).
ENGINE_ROWS = 32
# Rows that time the eager full pass on the CPU while measuring (efficientnet_lite0, 2 threads: 7-16 ms a row at
# batches of 2 to 8, so a few rows place it well enough against the engine's 3 ms).
FULL_SAMPLE_ROWS = 4
RowsForward = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class OcclusionRows:
    """Logits of occlusion rows ``(image, top, left, occluded)``: ``images[image]``, its window at
    ``(top, left)`` replaced by the fill where ``occluded``.

    Args:
        handle: the model.
        images: ``(B, C, H, W)`` clean images in [0, 1].
        fills: ``(B, C, H, W)`` what occluded pixels become.
        window: the window side in pixels.
        full: the full-pass rows forward (today's path), same arguments.
        mode: ``auto`` (the faster, measured), ``exact`` or ``approximate`` (the engine when it can
            follow the network), ``off`` (the full pass).
        batch_size: rows per call of ``full``.
        engine_batch: rows per call of the engine (default: ``batch_size``, at least :data:`ENGINE_ROWS`).
    """

    def __init__(self, handle: torch.nn.Module, images: torch.Tensor, fills: torch.Tensor, window: int,
                 full: RowsForward, mode: Incremental = "auto", batch_size: int = 8,
                 engine_batch: int | None = None) -> None:
        self.images, self.fills, self.window, self.full = images, fills, window, full
        self.batch_size, self.engine_batch = batch_size, engine_batch or max(batch_size, ENGINE_ROWS)
        self.engine: IncrementalForward | None = None
        self.path = "full"
        self.calls, self.full_row_seconds, self.warm_up_calls, self.sample_rows = 0, 0.0, 0, batch_size
        if mode == "off":
            return
        handle = as_handle(handle)
        graph, reason = engine_graph(handle.model, folded=handle.precision == "fp32")
        if graph is None:
            warnings.warn(f"occlusion runs in full: the incremental engine cannot follow this network: {reason}",
                          RuntimeWarning, stacklevel=3)
            return
        cap = APPROXIMATE_SHARE if mode == "approximate" else None
        self.engine = IncrementalForward(handle, graph, images, cap)
        self.path = "measuring" if mode == "auto" else mode
        self.warm_up_calls = int(handle.compile_mode == "on" or images.device.type != "cpu")
        # Eager on the CPU a few rows time the full pass well enough to choose, and each full row measured costs
        # what three or four engine rows do.
        self.sample_rows = min(batch_size, FULL_SAMPLE_ROWS) if self.warm_up_calls == 0 else batch_size

    def spans(self, total: int, desc: str | None = None) -> Iterator[slice]:
        """Slices of ``range(total)`` to ask for: while measuring, the full pass's warm-up and timed calls and
        one engine call of its own size; then calls of the chosen path's size."""
        done = 0
        if self.path == "measuring":
            for size in [self.batch_size] * self.warm_up_calls + [self.sample_rows, self.engine_batch]:
                if done < total:
                    yield slice(done, min(total, done + size))
                    done = min(total, done + size)
        size = self.batch_size if self.path == "full" else self.engine_batch
        for rows in chunks(total - done, size, desc=desc):
            yield slice(rows.start + done, rows.stop + done)

    def __call__(self, image: torch.Tensor, top: torch.Tensor, left: torch.Tensor,
                 occluded: torch.Tensor) -> torch.Tensor:
        """``(K, classes)`` logits of the rows."""
        self.calls += 1
        if self.path == "full" or (self.path == "measuring" and self.calls <= self.warm_up_calls):
            return self.full(image, top, left, occluded)
        start = time.perf_counter()
        if self.path == "measuring" and self.calls == self.warm_up_calls + 1:
            output = _settled(self.full(image, top, left, occluded))
            self.full_row_seconds = (time.perf_counter() - start) / image.numel()
            return output
        output = self.incremental(image, top, left, occluded)
        if self.path == "measuring":
            _settled(output)
            self.path = "exact" if (time.perf_counter() - start) / image.numel() < self.full_row_seconds else "full"
        return output

    def incremental(self, image: torch.Tensor, top: torch.Tensor, left: torch.Tensor,
                    occluded: torch.Tensor) -> torch.Tensor:
        """The rows through the engine; clean rows read the clean logits."""
        assert self.engine is not None
        output = self.engine.clean_logits[image].clone()
        if bool(occluded.any()):
            rows = occluded.nonzero().flatten()
            values = window_values(self.fills, image[rows], top[rows], left[rows], self.window, self.window)
            output[rows] = self.engine(image[rows], top[rows], left[rows], values)
        return output


def _settled(output: torch.Tensor) -> torch.Tensor:
    """``output`` once the GPU has computed it, so a timer sees the work and not its launch."""
    if output.device.type == "cuda":
        torch.cuda.synchronize(output.device)
    return output

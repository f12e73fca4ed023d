"""Batch sizes and chunked iteration: every method feeds the model in batches."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from tqdm.auto import tqdm

from cnnviz.zoo.handle import ModelHandle

# On CPU the best batch is the one whose activations stay in cache. Measured on 2 cores (2026-12-01):
# efficientnet_lite0 at 224 px peaks at 8 images (32 images run at 0.65 of that), the 28 px
# fashion_cnn at 128-512 images. A budget in input pixels serves both.
CPU_PIXELS = 8 * 224 * 224
CPU_MAX_BATCH = 256
MAX_BATCH = 1024


def auto_batch_size(handle: ModelHandle, *, backward: bool = False, size: int | None = None) -> int:
    """A batch size that fills the device without running out of memory.

    On CUDA: one probe forward (and backward) of 4 images measures memory
    per image, and the batch takes about half of the free memory. On CPU,
    memory is rarely the limit but cache is: a fixed budget of input pixels.
    """
    size = size or handle.input_size
    if handle.device.type != "cuda":
        return max(1, min(CPU_MAX_BATCH, CPU_PIXELS // (size * size)))
    probe = torch.rand(4, handle.in_channels, size, size, device=handle.device, requires_grad=backward)
    torch.cuda.synchronize(handle.device)
    torch.cuda.reset_peak_memory_stats(handle.device)
    start = torch.cuda.memory_allocated(handle.device)
    with torch.set_grad_enabled(backward):
        out = handle(probe)
        if backward:
            torch.autograd.grad(out.sum(), probe)
    per_image = max((torch.cuda.max_memory_allocated(handle.device) - start) / 4, 1)
    del out, probe
    free, _ = torch.cuda.mem_get_info(handle.device)
    return int(max(1, min(MAX_BATCH, 0.5 * free / per_image)))


def chunks(total: int, batch_size: int, *, desc: str | None = None) -> Iterator[slice]:
    """Slices covering ``range(total)``, at most ``batch_size`` long and of near-equal length
    (169 rows in batches of 8 are 22 batches of 7 or 8, not 21 of 8 and a slow one of 1),
    with a progress bar in a terminal when there is more than a handful of them (none in logs)."""
    count = -(-total // max(1, batch_size))
    bounds = [round(i * total / count) for i in range(count + 1)] if count else [0]
    show = desc is not None and count > 4
    spans = list(zip(bounds, bounds[1:]))
    for start, stop in tqdm(spans, desc=desc, disable=None if show else True, leave=False, unit="batch"):
        yield slice(start, stop)

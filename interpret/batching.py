"""Batch sizes and chunked iteration: every method feeds the model in batches."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from tqdm.auto import tqdm

from zoo.handle import ModelHandle

CPU_BATCH = 32  # measured: forward throughput on 2-8 cores stops rising past ~16-32 images
MAX_BATCH = 1024


def auto_batch_size(handle: ModelHandle, *, backward: bool = False, size: int | None = None) -> int:
    """A batch size that fills the device without running out of memory.

    On CUDA: one probe forward (and backward) of 4 images measures memory
    per image, and the batch takes about half of the free memory. On CPU,
    memory is rarely the limit and throughput flattens early, so a fixed size.
    """
    if handle.device.type != "cuda":
        return CPU_BATCH
    size = size or handle.input_size
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
    """Slices covering ``range(total)`` in steps of ``batch_size``, with a progress bar
    when there is more than a handful of them."""
    starts = range(0, total, max(1, batch_size))
    show = desc is not None and len(starts) > 4
    for start in tqdm(starts, desc=desc, disable=not show, leave=False, unit="batch"):
        yield slice(start, min(start + batch_size, total))

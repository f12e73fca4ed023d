"""The machine's limit: the bare model's best throughput over every path we know, measured in the same run.

A method's speed is only meaningful next to what the model alone can do. The
paths: eager fp32 in NCHW and channels-last, ``torch.compile`` fp32, eager
bf16 autocast and compiled bf16 (reduced precision only where the device
runs it fast: CPUs with AVX-512-bf16/AMX, GPUs). Each path runs at several
batch sizes; the limit is the best images/s over all of them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch

from cnnviz import zoo
from cnnviz.zoo.core import graph_from

Forward = Callable[[torch.Tensor], torch.Tensor]


def paths(handle: zoo.ModelHandle, *, compiled: bool = True, bf16: bool = True) -> dict[str, Forward]:
    """The ways to run ``handle``'s network: name -> forward callable (copies; the handle is not changed).

    The copies' weights take no gradient, as inside every method (the guard freezes them): a limit
    that also computed weight gradients would be lower than what the methods have to beat.
    """
    handle = copy.deepcopy(handle)
    for p in handle.parameters():
        p.requires_grad_(False)
    nchw = copy.deepcopy(handle)
    nchw.channels_last = False
    cl = copy.deepcopy(handle)
    cl.channels_last = True
    found: dict[str, Forward] = {"eager fp32 NCHW": nchw, "eager fp32 channels-last": cl}
    if compiled:
        found["compiled fp32"] = torch.compile(cl.forward, dynamic=False)
    if bf16:
        low = copy.deepcopy(cl)
        low.precision = "bf16"
        found["eager bf16"] = low
        if compiled:
            found["compiled bf16"] = torch.compile(low.forward, dynamic=False)
    return found


def forward_case(forward: Forward, x: torch.Tensor) -> Callable[[], object]:
    """One forward pass of ``x`` without a graph."""
    def run() -> None:
        with torch.no_grad():
            forward(x)
    return run


def backward_case(forward: Forward, x: torch.Tensor) -> Callable[[], object]:
    """Forward and backward to the input."""
    def run() -> None:
        xg = x.clone().requires_grad_(True)
        torch.autograd.grad(forward(xg)[:, 0].sum(), xg)
    return run


def backward_to_case(handle: zoo.ModelHandle, x: torch.Tensor, layer: str) -> Callable[[], object]:
    """Forward with no graph below ``layer``, backward from the score to the layer's output (eager only:
    the graph cut is a hook)."""
    def run() -> None:
        with graph_from(handle.layer(layer)) as rec:
            score = handle(x)[:, 0].sum()
        torch.autograd.grad(score, rec.output)
    return run


def limit_cases(handle: zoo.ModelHandle, image: torch.Tensor, sizes: list[int], layer: str | None = None, *,
                backward: bool = True, compiled: bool = True, bf16: bool = True) -> dict[str, Callable[[], object]]:
    """Cases ``limit forward|backward[ to LAYER] PATH SIZE`` for :func:`best_limit`, over every path and size."""
    cases: dict[str, Callable[[], object]] = {}
    for path, forward in paths(handle, compiled=compiled, bf16=bf16).items():
        for size in sizes:
            x = image.expand(size, *image.shape[1:]).contiguous()
            cases[f"limit forward|{path}|{size}"] = forward_case(forward, x)
            if backward:
                cases[f"limit backward|{path}|{size}"] = backward_case(forward, x)
                if layer is not None and path.startswith("eager"):
                    target = forward if isinstance(forward, zoo.ModelHandle) else handle
                    cases[f"limit backward to {layer}|{path}|{size}"] = backward_to_case(target, x, layer)
    return cases


def best_limit(seconds: dict[str, float], kind: str, *, fp32_only: bool = False) -> tuple[float, str, int]:
    """``(images/s, path, batch)`` of the fastest ``limit KIND`` case timed in ``seconds``."""
    best = (0.0, "", 0)
    for name, took in seconds.items():
        head, _, rest = name.partition("|")
        if head != f"limit {kind}" or not rest:
            continue
        path, size = rest.rsplit("|", 1)
        if fp32_only and "bf16" in path:
            continue
        best = max(best, (int(size) / took, path, int(size)))
    return best

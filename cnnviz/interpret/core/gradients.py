"""Gradients of a target score with respect to the input pixels, batched.

The shared mechanism of vanilla gradients, SmoothGrad, integrated gradients
and guided backprop: they differ only in which inputs they send through and
how they combine the gradients.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import torch

from cnnviz.interpret.core.batching import auto_batch_size, chunks
from cnnviz.zoo import CnnvizError
from cnnviz.interpret.core.targets import ResolvedTarget, take, target_scores
from cnnviz.zoo.handle import ModelHandle


def input_gradients(
    handle: ModelHandle,
    inputs: torch.Tensor,
    target: ResolvedTarget,
    *,
    batch_size: int | None = None,
    mode: Callable[[], AbstractContextManager] | None = None,
    desc: str | None = None,
) -> torch.Tensor:
    """d score / d input for every row of ``inputs``, in batches.

    Args:
        inputs: ``(N, C, H, W)`` pixels in [0, 1].
        target: per-row class indices ``(N,)`` or a callable on the output.
        mode: a context manager factory wrapped around each forward/backward
            (guided backprop passes its ReLU override here).
        desc: progress-bar label, shown when there are many batches.

    Returns:
        Gradients shaped like ``inputs``.
    """
    batch_size = batch_size or auto_batch_size(handle, backward=True)
    grads = torch.empty_like(inputs)
    for rows in chunks(inputs.shape[0], batch_size, desc=desc):
        chunk = inputs[rows].detach().requires_grad_(True)
        with torch.enable_grad(), (mode() if mode else nullcontext()):
            score = target_scores(handle, take(target, rows), handle(chunk)).sum()
            if not torch.isfinite(score):  # a dead unit can hide a NaN score behind finite gradients
                raise CnnvizError("the model gave NaN or infinite values as the target's score on these images: "
                                  "check its weights (zoo.load refuses non-finite ones)")
            (grads[rows],) = torch.autograd.grad(score, chunk)
    return grads

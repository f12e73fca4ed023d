"""TensorFlow's 'SAME' padding, for convolutions ported from TensorFlow (EfficientNet-Lite) and the
engines that fold them (``interpret``'s incremental attribution recognizes :func:`pad_same` in a traced graph).

Example:
    >>> import torch
    >>> same_padding(7, kernel=3, stride=2, dilation=1)
    (1, 1)
    >>> pad_same(torch.zeros(1, 1, 6, 6), (3, 3), (2, 2), (1, 1)).shape
    torch.Size([1, 1, 7, 7])
"""

from __future__ import annotations

import math

import torch
import torch.fx
import torch.nn.functional as F


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """Pixels padded (before, after) along one axis of ``size`` pixels so that output = ceil(size / stride)."""
    total = max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


@torch.fx.wrap
def pad_same(x: torch.Tensor, kernel: tuple[int, ...], stride: tuple[int, ...],
             dilation: tuple[int, ...]) -> torch.Tensor:
    """``x`` zero-padded by TensorFlow's 'SAME' rule for a conv of ``kernel``, ``stride`` and ``dilation``.

    The padding depends on the input size, so ``torch.fx`` keeps this function as one call
    (``torch.fx.wrap``) instead of tracing its arithmetic on the shape: the network traces.
    """
    top, bottom = same_padding(x.shape[-2], kernel[0], stride[0], dilation[0])
    left, right = same_padding(x.shape[-1], kernel[1], stride[1], dilation[1])
    return F.pad(x, (left, right, top, bottom)) if top or bottom or left or right else x

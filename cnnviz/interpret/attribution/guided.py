"""Guided backpropagation: ReLUs let only positive gradients through, where the input was positive.

captum overrides ``nn.ReLU`` modules with backward hooks, so it misses
functional ReLUs (``F.relu`` in a ``forward``) and ``ReLU6``. Here a torch
function mode swaps every ReLU-like call — module, functional or tensor
method, however often a module is reused — for a guided version, for the
duration of the backward pass only.

Not a faithful explanation: guided backprop barely changes when the model's
weights are randomized (Adebayo et al. 2018, "Sanity Checks for Saliency
Maps"); it mostly reconstructs the image's edges. ``cnnviz evaluate`` measures
this (see README for our numbers).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from cnnviz.interpret.core.gradients import input_gradients
from cnnviz.interpret.core.registry import method
from cnnviz.interpret.core.targets import Target, pass_target
from cnnviz.zoo.handle import ModelHandle


class GuidedClamp(torch.autograd.Function):
    """``clamp(x, low, high)`` whose backward passes ``max(grad, 0)`` where low < x < high.

    It saves the input (no new memory) and builds the mask inside aten's fused
    activation backward, not as separate comparison tensors in the forward.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, low: float, high: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.low, ctx.high = low, high
        return x.clamp(low, high)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (x,) = ctx.saved_tensors
        positive = grad.clamp(min=0)
        if ctx.high == float("inf"):
            return torch.ops.aten.threshold_backward(positive, x, ctx.low), None, None
        return torch.ops.aten.hardtanh_backward(positive, x, ctx.low, ctx.high), None, None


_RELUS = {F.relu, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_}
_HARDTANH = {F.hardtanh, F.hardtanh_}


class GuidedReLUs(TorchFunctionMode):
    """Within this mode every ReLU and ReLU6 (hardtanh from 0) is guided."""

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func in _RELUS:
            return GuidedClamp.apply(args[0], 0.0, float("inf"))
        if func in _HARDTANH:
            low = kwargs.get("min_val", args[1] if len(args) > 1 else -1.0)
            high = kwargs.get("max_val", args[2] if len(args) > 2 else 1.0)
            if low == 0:
                return GuidedClamp.apply(args[0], 0.0, float(high))
        return func(*args, **kwargs)


@method("guided_backprop", "attribution", "guided backprop: sharp edges, but fails the randomization check",
        group="gradients", order=23)
def guided_backprop(handle: ModelHandle, images: torch.Tensor, target: Target = None, *,
                    batch_size: int | None = None) -> torch.Tensor:
    """Guided backpropagation (Springenberg et al. 2015).

    Returns:
        The guided gradient ``(B, C, H, W)``.
    """
    indices = pass_target(handle, images, target)
    return input_gradients(handle, images, indices, batch_size=batch_size, mode=GuidedReLUs)

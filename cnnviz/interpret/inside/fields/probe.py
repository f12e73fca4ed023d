"""Gradient probing: checking a receptive-field box on the real network (zero gradient outside) and on
its positive, linear twin (non-zero gradient on every pixel inside)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from cnnviz.interpret.core.activations import layer_output
from cnnviz.interpret.inside.fields.geometry import ACTIVATIONS, EVAL_IDENTITY, as_pair, bind_args
from cnnviz.interpret.inside.fields.receptive_field import receptive_field
from cnnviz.interpret.inside.fields.types import Box, Size, input_side
from cnnviz.zoo.core import CnnvizError, preserve
from cnnviz.zoo.handle import as_handle


class SupportMode(TorchFunctionMode):
    """Runs a network as a positive linear one, so the input gradient of a unit is non-zero
    exactly where the unit depends on the input.

    Every conv weight becomes ``1 / fan_in`` (averaging keeps values bounded
    however deep the net), batch norm and activations become the identity
    and max pooling becomes average pooling; no weight is modified. Run it in
    float64 so the tails of a deep net's gradient do not underflow.
    """

    IDENTITY = ACTIVATIONS | EVAL_IDENTITY

    def __torch_function__(self, func: Callable[..., Any], types: Any, args: Sequence[Any] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in self.IDENTITY:
            return args[0] if args else kwargs["input"]
        if name == "conv2d":
            bound = bind_args(name, args, kwargs)
            weight = bound["weight"]
            average = torch.full(weight.shape, 1.0 / weight[0].numel(), dtype=torch.float64, device=weight.device)
            return F.conv2d(bound["input"].double(), average, None, bound.get("stride", 1), bound.get("padding", 0),
                            bound.get("dilation", 1), bound.get("groups", 1))
        if name in ("max_pool2d", "max_pool2d_with_indices"):
            bound = bind_args(name, args, kwargs)
            if bound.get("return_indices") or name.endswith("indices"):
                raise CnnvizError("support probing cannot replace a max pool that returns indices")
            if as_pair(bound.get("dilation"), 1) != (1, 1):
                raise CnnvizError("support probing cannot replace a dilated max pool")
            stride = bound.get("stride")
            return F.avg_pool2d(bound["input"], bound["kernel_size"], stride if stride not in (None, ()) else None,
                                bound.get("padding", 0), bound.get("ceil_mode", False), True)
        return func(*args, **kwargs)


def unit_gradient(model: nn.Module, layer: str | nn.Module, unit: tuple[int, int, int], *,
                  input_size: Size | None = None, support: bool = False, seed: int = 0) -> torch.Tensor:
    """``|d unit / d input|`` summed over input channels: an ``(H, W)`` map.

    Args:
        model: a zoo handle or a module taking [0, 1] images.
        layer: the layer (dotted name or module).
        unit: ``(channel, y, x)`` in the layer's output.
        input_size: side (or ``(h, w)``) of the probe image; default the model's.
        support: probe the positive linear version of the network
            (:class:`SupportMode`), whose gradient is non-zero on the whole
            dependency region; else the real network at a random image.
        seed: seeds the random probe image.

    Example:
        >>> import torchvision
        >>> grad = unit_gradient(torchvision.models.alexnet(), "features.0", (0, 5, 5), support=True)
        >>> [int(i) for i in grad.nonzero().min(0).values]
        [18, 18]
    """
    handle = as_handle(model)
    module = handle.layer(layer)
    size = input_side(handle, input_size)
    channel, y, x = unit
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(1, handle.in_channels, *size, generator=generator)
    image = image.to(handle.device, torch.float64 if support else torch.float32).requires_grad_(True)
    with preserve(handle), torch.enable_grad(), SupportMode() if support else nullcontext():
        try:
            output = layer_output(handle, module, image)
        except RuntimeError as exc:
            if not support:
                raise
            # An op SupportMode does not replace met float64 inputs with float32 weights.
            raise CnnvizError(f"support probing cannot run this network: {str(exc).splitlines()[0]}") from None
    if output.dim() != 4:
        raise CnnvizError(f"layer output has shape {tuple(output.shape)}: probing needs a (B, C, H, W) map")
    _, channels, height, width = output.shape
    if not (0 <= channel < channels and 0 <= y < height and 0 <= x < width):
        raise CnnvizError(f"unit {tuple(unit)} is outside the layer's {channels}x{height}x{width} output")
    (grad,) = torch.autograd.grad(output[0, channel, y, x], image, allow_unused=True)
    if grad is None:
        return torch.zeros(size, device=handle.device)
    return grad[0].abs().sum(0)


def nonzero_box(grad: torch.Tensor) -> Box | None:
    """The smallest box holding every non-zero pixel of a 2-D map (None if all zero)."""
    where = grad.nonzero()
    if where.numel() == 0:
        return None
    low, high = where.min(0).values, where.max(0).values
    return Box(int(low[0]), int(low[1]), int(high[0]) + 1, int(high[1]) + 1)


@dataclass(frozen=True)
class Probe:
    """The gradient check of one unit.

    Attributes:
        unit: ``(channel, y, x)``.
        box: the box from arithmetic, clipped to the image.
        gradient_box: bounding box of the real network's non-zero gradient.
        support_box: bounding box of the positive linear network's non-zero gradient.
        zero_outside: the real gradient is zero everywhere outside ``box``.
        dense_inside: the positive linear gradient is non-zero on every pixel of ``box``.
    """

    unit: tuple[int, int, int]
    box: Box
    gradient_box: Box | None
    support_box: Box | None
    zero_outside: bool
    dense_inside: bool

    @property
    def ok(self) -> bool:
        """The box is exact: nothing depends on pixels outside, everything inside counts."""
        return self.zero_outside and self.dense_inside and self.support_box == self.box


def verify_receptive_field(model: nn.Module, layer: str | nn.Module,
                           units: Sequence[tuple[int, int, int]] | None = None, *,
                           input_size: Size | None = None) -> list[Probe]:
    """Check the arithmetic box of ``units`` of ``layer`` against gradients.

    Args:
        units: ``(channel, y, x)`` triples; default the four corners and the
            centre of channel 0 (corners have boxes clipped by the padding),
            and the centre of the first channel of every run of channels
            with another field.

    Example:
        >>> import torchvision
        >>> all(p.ok for p in verify_receptive_field(torchvision.models.alexnet(), "features.3"))
        True
    """
    handle = as_handle(model)
    field = receptive_field(handle, layer, input_size=input_size)
    if units is None:
        h, w = field.output_size
        firsts = [sum(count for count, _, _ in field.channel_runs[:i]) for i in range(1, len(field.channel_runs))]
        units = list(dict.fromkeys([(0, 0, 0), (0, 0, w - 1), (0, h - 1, 0), (0, h - 1, w - 1),
                                    (0, h // 2, w // 2), *[(c, h // 2, w // 2) for c in firsts]]))
    probes = []
    for unit in units:
        box = field.box(unit[1], unit[2], channel=unit[0])
        real = unit_gradient(handle, layer, unit, input_size=field.input_size)
        dense = unit_gradient(handle, layer, unit, input_size=field.input_size, support=True)
        inside = torch.zeros_like(real, dtype=torch.bool)
        inside[box.top:box.bottom, box.left:box.right] = True
        probes.append(Probe(
            unit=tuple(unit), box=box, gradient_box=nonzero_box(real), support_box=nonzero_box(dense),
            zero_outside=bool((real[~inside] == 0).all()), dense_inside=bool((dense[inside] != 0).all()),
        ))
    return probes

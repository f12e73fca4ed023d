"""Per-operation rules: where a layer's output can change, given where its input changed.

Each node of the traced network falls in one of these kinds:

- **sliding** (convolutions of any kernel, stride, padding, dilation and groups, max and average
  pooling): the output changes where its window meets the input's box; the rule reads the input over
  those outputs' windows (halo included, padding as the op pads) and runs the op on that crop only;
- **pointwise** (eval-mode batch norm, activations, dropout in eval, arithmetic with a number): the
  op runs on the box values alone;
- **union** (residual adds, products and concatenation of changed maps): the boxes merge into one;
- **padding** (``F.pad`` and the EfficientNet-Lite 'SAME' padding): the box moves;
- anything else (global pooling, flatten, the classifier, an op this file does not know) gets full
  maps: :func:`apply` then rebuilds them and runs the op as the network would.

Example:
    >>> conv = torch.nn.Conv2d(1, 1, 3, padding=1)
    >>> sliding_op(conv, (torch.zeros(1, 1, 5, 5),), {}).kernel
    (3, 3)
"""

from __future__ import annotations

import functools
import inspect
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.fx.node import map_aggregate
from torchvision.ops import stochastic_depth

from cnnviz.interpret.attribution.incremental.fusion import same_conv2d, same_pads
from cnnviz.interpret.attribution.incremental.patch import Patch, fit_box, span
from cnnviz.zoo.core import pad_same, same_padding

Pair = tuple[int, int]


def pair(value: int | tuple[int, ...] | list[int]) -> Pair:
    """``(v, v)`` for an int, the pair itself otherwise."""
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


@dataclass(frozen=True)
class Sliding:
    """A window operation: its geometry, what its padding reads, and the op on an unpadded crop."""

    kernel: Pair
    stride: Pair
    padding: Pair
    dilation: Pair
    pad_value: float
    run: Callable[[torch.Tensor], torch.Tensor]


def _conv(input: Any, weight: torch.Tensor, bias: torch.Tensor | None = None, stride: Any = 1,
          padding: Any = 0, dilation: Any = 1, groups: int = 1) -> Sliding | None:
    if isinstance(padding, str) or weight.dim() != 4:
        return None
    s, d = pair(stride), pair(dilation)
    return Sliding(pair(weight.shape[-2:]), s, pair(padding), d, 0.0,
                   lambda x: F.conv2d(x, weight, bias, s, 0, d, groups))


def _same_conv(input: Any, weight: torch.Tensor, bias: torch.Tensor | None, stride: tuple[int, int],
               dilation: tuple[int, int], groups: int) -> Sliding | None:
    """:func:`same_conv2d`: only the padding before counts here; a read past the map's end reads zeros."""
    if not isinstance(input, Patch):
        return None
    (top, _), (left, _) = same_pads(input.clean.shape[-2:], weight.shape[-2:], stride, dilation)
    return Sliding(pair(weight.shape[-2:]), stride, (top, left), dilation, 0.0,
                   lambda x: F.conv2d(x, weight, bias, stride, 0, dilation, groups))


def _max_pool(input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
              ceil_mode: bool = False, return_indices: bool = False) -> Sliding | None:
    if ceil_mode or return_indices:
        return None
    k, s, d = pair(kernel_size), pair(stride or kernel_size), pair(dilation)
    return Sliding(k, s, pair(padding), d, float("-inf"), lambda x: F.max_pool2d(x, k, s, 0, d))


def _avg_pool(input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
              count_include_pad: bool = True, divisor_override: int | None = None) -> Sliding | None:
    if ceil_mode or (pair(padding) != (0, 0) and not count_include_pad):
        return None
    k, s = pair(kernel_size), pair(stride or kernel_size)
    divisor = divisor_override or k[0] * k[1]
    return Sliding(k, s, pair(padding), (1, 1), 0.0, lambda x: F.avg_pool2d(x, k, s, 0, divisor_override=divisor))


@functools.cache
def _signature(fn: Callable) -> inspect.Signature:
    return inspect.signature(fn)


def _bind(fn: Callable[..., Sliding | None], args: tuple, kwargs: dict) -> Sliding | None:
    try:
        _signature(fn).bind(*args, **kwargs)
    except TypeError:
        return None
    return fn(*args, **kwargs)


def sliding_op(target: Any, args: tuple, kwargs: dict) -> Sliding | None:
    """The :class:`Sliding` form of a call of ``target`` (a module or function) on 4-d maps, or None.

    Convolutions and pooling act alike in training mode; only exact module classes count (a subclass
    may change ``forward``)."""
    if type(target) is nn.Conv2d and target.padding_mode == "zeros":
        return _conv(args[0], target.weight, target.bias, target.stride, target.padding, target.dilation,
                     target.groups)
    if type(target) is nn.MaxPool2d:
        return _max_pool(args[0], target.kernel_size, target.stride, target.padding, target.dilation,
                         target.ceil_mode, target.return_indices)
    if type(target) is nn.AvgPool2d:
        return _avg_pool(args[0], target.kernel_size, target.stride, target.padding, target.ceil_mode,
                         target.count_include_pad, target.divisor_override)
    spec = {F.conv2d: _conv, torch.conv2d: _conv, F.max_pool2d: _max_pool, torch.max_pool2d: _max_pool,
            F.avg_pool2d: _avg_pool, same_conv2d: _same_conv}.get(target)
    return _bind(spec, args, kwargs) if spec else None


POINTWISE_MODULES = (nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Hardtanh, nn.SiLU, nn.Sigmoid, nn.Tanh,
                     nn.GELU, nn.Hardswish, nn.Hardsigmoid, nn.ELU, nn.Mish, nn.Dropout, nn.Dropout2d, nn.Identity)
POINTWISE_FUNCTIONS = {F.relu, torch.relu, F.relu6, F.hardtanh, F.silu, F.gelu, torch.sigmoid, F.sigmoid, torch.tanh,
                       F.hardswish, F.hardsigmoid, F.leaky_relu, F.elu, F.mish, F.dropout, stochastic_depth}
POINTWISE_METHODS = {"relu", "sigmoid", "tanh", "contiguous", "clone"}
ARITHMETIC = {operator.add, operator.iadd, operator.sub, operator.mul, operator.imul, operator.truediv,
              torch.add, torch.mul, torch.sub}


def is_pointwise(target: Any, args: tuple, kwargs: dict) -> bool:
    """Whether the call maps each position of its one changed map on its own (no neighbours, no batch)."""
    if isinstance(target, nn.Module):
        return isinstance(target, POINTWISE_MODULES) and not target.training
    if target is F.dropout or target is stochastic_depth:
        training = kwargs.get("training", args[3] if len(args) > 3 else target is F.dropout)
        return not training
    if target in ARITHMETIC:
        return sum(isinstance(a, Patch) for a in args) == 1 and all(
            isinstance(a, (Patch, int, float)) for a in args) and not kwargs
    return target in POINTWISE_FUNCTIONS or target in POINTWISE_METHODS


def _merge(patches: list[Patch]) -> tuple[torch.Tensor, torch.Tensor, Pair]:
    """One box per row holding every patch's box: (tops, lefts, (height, width))."""
    height, width = patches[0].clean.shape[-2:]
    top, box_h = fit_box(torch.stack([p.top for p in patches]).min(0).values,
                         torch.stack([p.top + p.values.shape[-2] for p in patches]).max(0).values, height)
    left, box_w = fit_box(torch.stack([p.left for p in patches]).min(0).values,
                          torch.stack([p.left + p.values.shape[-1] for p in patches]).max(0).values, width)
    return top, left, (box_h, box_w)


def _union(target: Any, args: tuple, kwargs: dict, clean_out: torch.Tensor) -> Patch | None:
    """Residual adds, products, concatenation along channels of changed maps of one size."""
    if target is torch.cat:
        tensors, dim = args[0], kwargs.get("dim", args[1] if len(args) > 1 else 0)
        if dim not in (1, -3) or not all(isinstance(t, Patch) for t in tensors):
            return None
        patches = list(tensors)
    elif target in ARITHMETIC and len(args) == 2 and all(isinstance(a, Patch) for a in args) and not kwargs:
        patches = list(args)
    else:
        return None
    if any(p.clean.shape[-2:] != patches[0].clean.shape[-2:] for p in patches):
        return None
    top, left, (box_h, box_w) = _merge(patches)
    rows, cols = span(top, box_h), span(left, box_w)
    crops = [p.read(rows, cols) for p in patches]
    values = torch.cat(crops, dim=1) if target is torch.cat else target(*crops)
    return Patch(values, top, left, patches[0].image, clean_out)


def _padding(target: Any, args: tuple, kwargs: dict, clean_out: torch.Tensor) -> Patch | None:
    """Zero padding: the box keeps its values and moves by the padding before it."""
    patch = args[0]
    if target is pad_same:
        kernel, stride, dilation = args[1:4]
        top = same_padding(patch.clean.shape[-2], kernel[0], stride[0], dilation[0])[0]
        left = same_padding(patch.clean.shape[-1], kernel[1], stride[1], dilation[1])[0]
    elif target is F.pad and len(args) == 2 and not kwargs and len(args[1]) == 4 and min(args[1]) >= 0:
        left, top = args[1][0], args[1][2]
    else:
        return None
    return Patch(patch.values, patch.top + top, patch.left + left, patch.image, clean_out)


def _slide(op: Sliding, patch: Patch, clean_out: torch.Tensor, cap: float | None) -> Patch:
    """Run ``op`` on the crop of ``patch`` that feeds the outputs its box can change."""
    starts, reads = [], []
    for axis, (first, box) in enumerate(((patch.top, patch.values.shape[-2]), (patch.left, patch.values.shape[-1]))):
        k, s, p, d = op.kernel[axis], op.stride[axis], op.padding[axis], op.dilation[axis]
        size = clean_out.shape[-2 + axis]
        low = torch.div(first + p - (k - 1) * d + s - 1, s, rounding_mode="floor").clamp(min=0)
        high = (torch.div(first + box - 1 + p, s, rounding_mode="floor") + 1).clamp(max=size)
        start, length = fit_box(low, high, size, None if cap is None else max(1, round(cap * size)))
        starts.append(start)
        reads.append(span(start * s - p, (length - 1) * s + (k - 1) * d + 1))
    values = op.run(patch.read(reads[0], reads[1], op.pad_value))
    return Patch(values, starts[0], starts[1], patch.image, clean_out)


def _full(value: Any) -> Any:
    return map_aggregate(value, lambda v: v.full() if isinstance(v, Patch) else v)


def call(target: Any, method: str | None, args: tuple, kwargs: dict) -> Any:
    """Run one node as the network would: a module, a function, or a method of the first argument."""
    if method is not None:
        return getattr(args[0], method)(*args[1:], **kwargs)
    return target(*args, **kwargs)


def apply(target: Any, method: str | None, args: tuple, kwargs: dict, clean_out: Any,
          cap: float | None = None) -> Any:
    """One node's output for changed inputs: a :class:`Patch` where a rule follows the change, else the
    full output computed from full inputs.

    Args:
        target: the module or function the node calls (ignored for a method call).
        method: the method name of a ``call_method`` node, else None.
        args, kwargs: the node's arguments, changed maps given as :class:`Patch`.
        clean_out: the node's output on the clean images.
        cap: the approximate mode's largest box, as a share of the map side (None: exact).
    """
    patches = [a for a in args if isinstance(a, Patch)]
    result = None
    if len(patches) == 1 and args and isinstance(args[0], Patch) and isinstance(clean_out, torch.Tensor) \
            and clean_out.dim() == 4:
        op = sliding_op(target, args, kwargs) if method is None else None
        if op is not None:
            result = _slide(op, args[0], clean_out, cap)
        elif is_pointwise(method or target, args, kwargs):
            swapped = tuple(a.values if isinstance(a, Patch) else a for a in args)
            result = Patch(call(target, method, swapped, kwargs), args[0].top, args[0].left, args[0].image, clean_out)
        elif method is None and target in (pad_same, F.pad):
            result = _padding(target, args, kwargs, clean_out)
    elif method is None and isinstance(clean_out, torch.Tensor) and clean_out.dim() == 4:
        result = _union(target, args, kwargs, clean_out)
    if result is None:
        return call(target, method, _full(args), _full(kwargs))
    return result.values if result.covers_map else result

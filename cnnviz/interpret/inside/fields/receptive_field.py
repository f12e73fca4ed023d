"""Receptive fields: which input pixels each unit of a conv or pool layer can see.

Arithmetic first: one forward pass of a blank image runs under a torch
function mode that follows the geometry of every tensor derived from the
input. Each spatial axis carries ``(size, jump, start)``: unit ``i`` of the
map sees input pixels ``start + i * jump`` to ``start + i * jump + size - 1``.
Working at the level of torch functions rather than modules is what makes it
exact for any CNN: TF-'SAME' convs (an ``F.pad`` that can be asymmetric and
depends on the input size, then a conv), residual additions written as
``out += identity`` inside a ``forward`` (the box is the union over the
paths, i.e. the largest), and concatenated branches are all seen. Boxes are
kept per run of channels, so after a concatenation each channel keeps its
own branch's box, and the layer's field is the largest of them. An operation the
arithmetic does not know (upsampling, reflection padding, a pooled map
broadcast back over a map, ...) marks everything after it as unknown rather
than guessing.

Verification by gradient probing: the input gradient of one unit must be zero
outside its box (on the real model), and the same network made positive and
linear (every conv weight ``1 / fan_in``, batch norm and activations the
identity, max pooling averaged) must have a non-zero gradient on every pixel
of the box, so the box is neither too small nor too large.

Example:
    >>> import torchvision
    >>> field = receptive_field(torchvision.models.vgg16(), "features.28", input_size=64)
    >>> field.size, field.jump
    ((196, 196), (16, 16))
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from cnnviz.interpret.inside.fields.geometry import Geo, Geometry, GeometryTracer, Unknown, tensors_in, union
from cnnviz.interpret.inside.fields.types import LayerField, ReceptiveField, Size, input_side
from cnnviz.zoo.core import CnnvizError, forward_hooks, preserve
from cnnviz.zoo.handle import as_handle, layer_name


def _is_conv_or_pool(module: nn.Module) -> bool:
    return isinstance(module, (nn.modules.conv._ConvNd, nn.modules.pooling._MaxPoolNd,
                               nn.modules.pooling._AvgPoolNd, nn.modules.pooling._AdaptiveAvgPoolNd,
                               nn.modules.pooling._AdaptiveMaxPoolNd))


def trace_geometry(model: nn.Module, input_size: Size | None = None) -> list[tuple[str, Geo]]:
    """``(module name, output geometry)`` of every module call, in the order the calls finish,
    from one forward pass of a blank image.

    Example:
        >>> import torchvision
        >>> geos = dict(trace_geometry(torchvision.models.alexnet(), 224))
        >>> geos["features.0"].runs
        ((64, (Axis(size=11, jump=4, start=-2), Axis(size=11, jump=4, start=-2))),)
    """
    handle = as_handle(model)
    size = input_side(handle, input_size)
    named = [(name, module) for name, module in handle.model.named_modules() if name]
    calls: list[tuple[str, Geo]] = []
    tracer = GeometryTracer()

    def make_hook(name: str) -> Callable[[nn.Module, Any, Any], None]:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            first = next(tensors_in(output), None)
            if first is not None:  # snapshot now: a later in-place op may change the tensor
                calls.append((name, tracer.lookup(first)))
        return hook

    image = torch.zeros(1, handle.in_channels, *size, device=handle.device)
    with preserve(handle), torch.no_grad(), forward_hooks((m, make_hook(n)) for n, m in named):
        with tracer:
            tracer.tag(image)
            handle(image)
    return calls


def _field(name: str, geo: Geo, size: tuple[int, int]) -> ReceptiveField | None:
    if not isinstance(geo, Geometry):
        return None
    largest = union([axes for _, axes in geo.runs])
    if isinstance(largest, Unknown):
        return None
    ay, ax = largest
    runs = () if geo.same_for_all else tuple(
        (count, (a[0].size, a[1].size), (a[0].start, a[1].start)) for count, a in geo.runs)
    return ReceptiveField(name, (ay.size, ax.size), (ay.jump, ax.jump), (ay.start, ax.start), size, geo.shape, runs)


def receptive_fields(model: nn.Module, *, input_size: Size | None = None,
                     every_module: bool = False) -> list[LayerField]:
    """The receptive field of every conv and pool layer (or every module), in forward order.

    Args:
        model: a zoo handle or a module taking [0, 1] images.
        input_size: side (or ``(h, w)``) of the input; default the model's.
        every_module: list every module that ran, not only conv and pool layers.

    Example:
        >>> import torchvision
        >>> rows = receptive_fields(torchvision.models.alexnet())
        >>> [(r.name, r.field.size[0], r.field.jump[0]) for r in rows if r.name == "features.10"]
        [('features.10', 163, 16)]
    """
    handle = as_handle(model)
    size = input_side(handle, input_size)
    modules = dict(handle.model.named_modules())
    seen: Counter[str] = Counter()
    rows = []
    for name, geo in trace_geometry(handle, size):
        module = modules[name]
        seen[name] += 1
        if not (every_module or _is_conv_or_pool(module)):
            continue
        label = name if seen[name] == 1 else f"{name} (call {seen[name]})"
        reason = geo.reason if isinstance(geo, Unknown) else ""
        rows.append(LayerField(label, type(module).__name__, _field(name, geo, size), reason))
    return rows


def layer_field(model: nn.Module, layer: str | nn.Module, *,
                input_size: Size | None = None) -> tuple[ReceptiveField | None, str]:
    """``(field, "")``, or ``(None, why)`` when arithmetic cannot give ``layer``'s receptive field.

    Raises:
        CnnvizError: for an unknown layer, or one that does not run exactly
            once per forward pass.
    """
    handle = as_handle(model)
    module = handle.layer(layer)
    name = layer_name(handle.model, module)
    size = input_side(handle, input_size)
    geos = [geo for called, geo in trace_geometry(handle, size) if called == name]
    if not geos:
        raise CnnvizError(f"layer {name!r} did not run in the forward pass: pick another layer")
    if len(geos) > 1:
        raise CnnvizError(f"layer {name!r} runs {len(geos)} times per forward pass (a shared module), "
                          "so its receptive field is ambiguous: pick a layer that runs once")
    field = _field(name, geos[0], size)
    return field, (geos[0].reason if isinstance(geos[0], Unknown) else "")


def receptive_field(model: nn.Module, layer: str | nn.Module, *, input_size: Size | None = None) -> ReceptiveField:
    """The receptive field of ``layer``'s units, computed by arithmetic.

    Raises:
        CnnvizError: for an unknown layer, one that runs several times per
            pass, one whose output is not a map, or an operation on the way
            that the arithmetic cannot follow.

    Example:
        >>> import torchvision
        >>> field = receptive_field(torchvision.models.alexnet(), "features.10")
        >>> field.size, field.jump, field.box(0, 0)
        ((163, 163), (16, 16), Box(top=0, left=0, bottom=97, right=97))
    """
    field, reason = layer_field(model, layer, input_size=input_size)
    if field is None:
        raise CnnvizError(f"the receptive field of {layer!r} cannot be computed by arithmetic: {reason} "
                          "(probe it with interpret.unit_gradient)")
    return field

"""Filters: the weights of conv layers as small images.

The first layer's filters act on the pixels, so each is shown in colour. A
deeper filter acts on the previous layer's channels, so it is shown either
as one gray tile per input channel or as the mean over its input channels;
the course notes warn that only the first layer reads directly as a pattern.

Example:
    >>> import torchvision
    >>> filters(torchvision.models.alexnet()).shape
    torch.Size([64, 3, 11, 11])
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import nn

from cnnviz.zoo.core import CnnvizError, closest
from cnnviz.zoo.handle import as_handle, layer_name

FilterMode = Literal["auto", "rgb", "channels", "mean"]
FILTER_MODES = get_args(FilterMode)


def conv_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(dotted name, module)`` of every 2-D conv layer (not transposed), in definition order.

    Example:
        >>> import torchvision
        >>> [name for name, _ in conv_layers(torchvision.models.alexnet())][:2]
        ['features.0', 'features.3']
    """
    net = as_handle(model).model
    return [(name, m) for name, m in net.named_modules()
            if isinstance(m, nn.modules.conv._ConvNd) and m.weight.dim() == 4 and not m.transposed]


def conv_weight(model: nn.Module, layer: str | nn.Module | None = None) -> tuple[str, torch.Tensor]:
    """The name and detached weight ``(K, C_in / groups, kh, kw)`` of ``layer`` (default: the first conv)."""
    handle = as_handle(model)
    convs = conv_layers(handle)
    if not convs:
        raise CnnvizError(f"{handle.name} has no 2-D conv layer: filters need one")
    if layer is None:
        name, module = convs[0]
    else:
        module = handle.layer(layer)
        name = layer_name(handle.model, module)
        if not any(m is module for _, m in convs):
            names = [n for n, _ in convs]
            raise CnnvizError(f"layer {name!r} is a {type(module).__name__}, not a conv layer"
                              f"{closest(name, names) or '; conv layers: ' + ', '.join(names[:5]) + ', ...'}")
    return name, module.weight.detach()


def normalize_each(tiles: torch.Tensor) -> torch.Tensor:
    """Each tile (first dimension) scaled min..max to [0, 1]; a constant tile becomes 0.5.

    Example:
        >>> normalize_each(torch.tensor([[[-1.0, 1.0]], [[2.0, 2.0]]])).tolist()
        [[[0.0, 1.0]], [[0.5, 0.5]]]
    """
    flat = tiles.flatten(1)
    low, high = flat.min(1).values, flat.max(1).values
    span = (high - low).view(-1, *[1] * (tiles.dim() - 1))
    scaled = (tiles - low.view_as(span)) / span.clamp_min(torch.finfo(tiles.dtype).tiny)
    return torch.where(span > 0, scaled, torch.full_like(tiles, 0.5))


def filter_mode(model: nn.Module, weight: torch.Tensor, mode: FilterMode = "auto") -> FilterMode:
    """``mode``, with ``"auto"`` resolved: rgb for a layer reading the image's 1 or 3 channels, else mean."""
    if mode != "auto":
        return mode
    reads_pixels = weight.shape[1] == as_handle(model).in_channels and weight.shape[1] in (1, 3)
    return "rgb" if reads_pixels else "mean"


def filters(model: nn.Module, layer: str | nn.Module | None = None, *, mode: FilterMode = "auto") -> torch.Tensor:
    """The filters of a conv layer as images in [0, 1], each filter normalized on its own.

    Args:
        model: a zoo handle or a module.
        layer: a conv layer (dotted name or module); default the first conv layer.
        mode: ``"rgb"``: ``(K, C, kh, kw)`` colour (or gray) filters, for a
            layer reading 1 or 3 channels; ``"channels"``: ``(K, C_in, kh, kw)``,
            one gray tile per input channel, normalized together so their
            strengths compare; ``"mean"``: ``(K, 1, kh, kw)``, the mean over
            input channels; ``"auto"``: rgb for a layer reading the image's
            channels, else mean.

    Returns:
        A tensor on the model's device.

    Example:
        >>> import torchvision
        >>> filters(torchvision.models.alexnet(), "features.3", mode="channels").shape
        torch.Size([192, 64, 5, 5])
    """
    handle = as_handle(model)
    name, weight = conv_weight(handle, layer)
    weight = weight.float()
    if mode not in FILTER_MODES:
        raise CnnvizError(f"unknown filter mode {mode!r}: choose from {', '.join(FILTER_MODES)}")
    mode = filter_mode(handle, weight, mode)
    if mode == "rgb":
        if weight.shape[1] not in (1, 3):
            raise CnnvizError(f"{name} reads {weight.shape[1]} channels per filter: only 1 or 3 can be shown as "
                              "colour; use mode 'channels' or 'mean'")
        return normalize_each(weight)
    if mode == "channels":
        return normalize_each(weight)
    return normalize_each(weight.mean(dim=1, keepdim=True))

"""Feature maps: every channel of a layer for an image, ordered by how strongly it fires.

Example:
    >>> from cnnviz import zoo
    >>> handle = zoo.load("efficientnet_lite0", device="cpu")
    >>> images = handle.prepare([zoo.load_image("chelsea")])
    >>> maps = feature_maps(handle, images, layer="blocks.2")
    >>> maps.shape, channel_order(maps).shape
    (torch.Size([1, 24, 56, 56]), torch.Size([1, 24]))
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from cnnviz.interpret.core.batching import auto_batch_size, chunks
from cnnviz.interpret.core.registry import method
from cnnviz.zoo.core import CnnvizError, PositiveInt, record
from cnnviz.zoo.handle import ModelHandle


@method("feature_maps", "features", "every channel of a layer's output for each image", order=110)
def feature_maps(handle: ModelHandle, images: torch.Tensor, target: Any = None, *,
                 layer: str | nn.Module | None = None, upsample: bool = False,
                 batch_size: PositiveInt | None = None) -> torch.Tensor:
    """The activation maps of ``layer``: ``(B, C, h, w)``, or ``(B, C, H, W)`` with ``upsample``.

    Args:
        target: unused (feature maps do not depend on a class); kept so every
            registered method is called the same way.
        layer: conv layer (dotted name or module); default the model's default layer.
        upsample: resize the maps bilinearly to the input size (for overlays).
        batch_size: images per forward pass (default: automatic).

    Example:
        >>> import torchvision
        >>> feature_maps(torchvision.models.alexnet(), torch.rand(1, 3, 224, 224), layer="features.0").shape
        torch.Size([1, 64, 55, 55])
    """
    del target
    if images is None:
        raise CnnvizError("feature maps need images: pass a (B, C, H, W) batch")
    if layer is None:
        if handle.default_layer is None:
            raise CnnvizError(f"{handle.name} has no default layer: pass layer= (see cnnviz layers)")
        layer = handle.default_layer
    module = handle.layer(layer)
    batch_size = batch_size or auto_batch_size(handle)
    outputs = []
    for rows in chunks(images.shape[0], batch_size, desc="feature maps"):
        # A full pass with record (not layer_output): it notices a module that runs twice.
        with torch.no_grad(), record({"layer": module}) as rec:
            handle(images[rows])
        outputs.append(rec["layer"].output)
    maps = torch.cat(outputs)
    if maps.dim() != 4:
        raise CnnvizError(f"layer {layer!r} outputs shape {tuple(maps.shape)}, not (B, C, H, W) maps: "
                          "pick a conv layer")
    if upsample:
        maps = F.interpolate(maps, size=images.shape[-2:], mode="bilinear", align_corners=False)
    return maps


SortKey = Literal["mean", "max", "none"]


def channel_order(maps: torch.Tensor, by: SortKey = "mean") -> torch.Tensor:
    """Channel indices per image, strongest first: ``(B, C)``.

    Args:
        maps: ``(B, C, H, W)`` feature maps.
        by: ``"mean"`` activation over the map, ``"max"``, or ``"none"`` (layer order).

    Example:
        >>> maps = torch.zeros(1, 3, 2, 2)
        >>> maps[0, 2] = 1.0
        >>> channel_order(maps).tolist()
        [[2, 0, 1]]
    """
    if maps.dim() != 4:
        raise CnnvizError(f"feature maps must be (B, C, H, W), got {tuple(maps.shape)}")
    b, c = maps.shape[:2]
    if by == "none":
        return torch.arange(c, device=maps.device).expand(b, c).clone()
    if by not in ("mean", "max"):
        raise CnnvizError(f"unknown channel order {by!r}: choose mean, max or none")
    scores = maps.mean(dim=(2, 3)) if by == "mean" else maps.amax(dim=(2, 3))
    return scores.argsort(dim=1, descending=True, stable=True)  # stable: ties stay in layer order

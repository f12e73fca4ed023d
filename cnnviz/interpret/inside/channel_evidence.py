"""Which channels of a layer carry the evidence for a class: activation x gradient of the class score, per
channel (the terms whose sum over channels is the first-order, Taylor view of the layer's contribution).

Example:
    >>> from cnnviz import zoo
    >>> handle = zoo.load("fashion_cnn", device="cpu")
    >>> images = handle.prepare([zoo.load_image("chelsea", channels=1)])
    >>> evidence = unit_evidence(handle, images, layer=handle.default_layer)
    >>> evidence.dim()
    4
"""

from __future__ import annotations

import torch
from torch import nn

from cnnviz.interpret.core import Target, as_batch, target_scores
from cnnviz.zoo.core import CnnvizError, preserve, record
from cnnviz.zoo.handle import ModelHandle, as_handle


def unit_evidence(model: nn.Module, images: torch.Tensor, target: Target = None, *,
                  layer: str | nn.Module | None = None) -> torch.Tensor:
    """``activation * d score / d activation`` of every channel of ``layer``: ``(B, C, h, w)``.

    Summed over a channel's map it says how much that channel pushes the class score up (positive) or
    down; the map says where. ``target`` None explains each image's predicted class.

    Args:
        model: a zoo handle or a module taking [0, 1] images.
        images: ``(B, C, H, W)`` in [0, 1].
        target: class index or name, or a callable score (see :mod:`interpret.core.targets`).
        layer: a layer with a ``(B, C, h, w)`` output; default the model's default layer.
    """
    handle: ModelHandle = as_handle(model)
    layer = layer if layer is not None else handle.default_layer
    if layer is None:
        raise CnnvizError(f"{handle.name} has no default layer: pass layer= (see cnnviz layers)")
    module = handle.layer(layer)
    batch = as_batch(images, handle).clone().requires_grad_(True)  # so the layer's output joins the graph
    with preserve(handle), torch.enable_grad(), record({"layer": module}, detach=False) as recorded:
        output = handle(batch)
        activation = recorded["layer"].output
        if activation.dim() != 4:
            raise CnnvizError(f"layer {layer!r} gives {tuple(activation.shape)}, not (B, C, h, w) maps: "
                              "pick a convolutional layer")
        (gradient,) = torch.autograd.grad(target_scores(handle, target, output).sum(), activation)
    return (activation * gradient).detach().float()

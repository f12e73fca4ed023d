"""A layer's output, running the network only as far as that layer: the mechanism behind feature maps,
the atlas, receptive-field probes and feature inversion."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from cnnviz.zoo.core import CnnvizError, forward_hooks, preserve, run_until
from cnnviz.zoo.handle import as_handle


def layer_output(model: nn.Module, layer: str | nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The output of ``layer`` for ``images``, running the network only as far as that layer.

    Keeps the autograd graph when gradients are enabled, so a caller may
    differentiate it. If the layer runs several times per pass, this is its
    first call (use :func:`receptive_field` or ``record`` to detect reuse).

    Example:
        >>> import torchvision
        >>> net = torchvision.models.resnet18()
        >>> layer_output(net, "layer1", torch.rand(2, 3, 64, 64)).shape
        torch.Size([2, 64, 16, 16])
    """
    handle = as_handle(model)
    module = handle.layer(layer)
    captured: list[torch.Tensor] = []

    def hook(module: nn.Module, inputs: Any, output: Any) -> None:
        tensor = _first_tensor(output)
        if tensor is None:
            raise CnnvizError(f"layer {layer!r} does not output a tensor: pick another layer")
        captured.append(tensor)

    with preserve(handle, freeze=False), forward_hooks([(module, hook)]):  # eval mode: batch norm keeps its statistics
        run_until(handle, images, [module])  # the layers after it never run
    if not captured:
        raise CnnvizError(f"layer {layer!r} did not run in the forward pass: pick another layer")
    return captured[0]


def _first_tensor(output: Any) -> torch.Tensor | None:
    if isinstance(output, (tuple, list)):
        return next((o for o in output if isinstance(o, torch.Tensor)), None)
    return output if isinstance(output, torch.Tensor) else None

"""Grad-CAM and guided Grad-CAM: where in a conv layer's map the class evidence sits.

Example:
    >>> import zoo, interpret
    >>> handle = zoo.load("efficientnet_lite0", device="cpu")
    >>> cam = interpret.gradcam(handle, handle.prepare([zoo.load_image("chelsea")]))
    >>> cam.shape
    torch.Size([1, 1, 224, 224])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from interpret.batching import auto_batch_size, chunks
from interpret.gradients import pass_target, resolve_target, take
from interpret.guided import guided_backprop
from interpret.hooks import graph_from
from interpret.registry import method
from interpret.targets import Target, target_scores
from zoo.errors import CnnvizError
from zoo.handle import ModelHandle
from zoo.layers import layer_name


def cam_layer(handle: ModelHandle, layer: str | nn.Module | None) -> nn.Module:
    """The layer to use: the given one, or the model's default."""
    if layer is None:
        if handle.default_layer is None:
            raise CnnvizError(f"{handle.name} has no default layer for CAM: pass layer= (see cnnviz layers)")
        layer = handle.default_layer
    return handle.layer(layer)


@method("gradcam", "attribution", "Grad-CAM: class evidence on a conv layer's grid, upsampled")
def gradcam(handle: ModelHandle, images: torch.Tensor, target: Target = None, *,
            layer: str | nn.Module | None = None, upsample: bool = True,
            batch_size: int | None = None) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al. 2017): ReLU of the activation maps weighted by their mean gradient.

    Args:
        layer: conv layer (dotted name or module); default: the model's default layer.
        upsample: resize the map bilinearly to the input size (else layer resolution).

    Returns:
        ``(B, 1, H, W)`` non-negative maps (unnormalized).
    """
    module = cam_layer(handle, layer)
    name = layer_name(handle.model, module)
    indices = pass_target(handle, images, target)
    batch_size = batch_size or auto_batch_size(handle, backward=True)
    maps = []
    for rows in chunks(images.shape[0], batch_size, desc="gradcam"):
        # The graph starts at the layer: below it the forward pass keeps nothing for a backward pass.
        with graph_from(module, name) as rec:
            score = target_scores(handle, take(indices, rows), handle(images[rows])).sum()
            activation = rec.output
            (grad,) = torch.autograd.grad(score, activation, allow_unused=True)
        if grad is None:
            raise CnnvizError(f"no gradient reached layer {name!r}: "
                              "the target does not depend on it")
        activation = activation.detach()
        if activation.dim() != 4:
            raise CnnvizError(f"Grad-CAM needs a conv layer with (B, C, H, W) output; this one gives "
                              f"{tuple(activation.shape)}")
        weights = grad.mean(dim=(2, 3), keepdim=True)
        maps.append(F.relu((weights * activation).sum(dim=1, keepdim=True)))
    cam = torch.cat(maps)
    if upsample:
        cam = F.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False)
    return cam


@method("guided_gradcam", "attribution", "guided Grad-CAM: guided backprop masked by Grad-CAM")
def guided_gradcam(handle: ModelHandle, images: torch.Tensor, target: Target = None, *,
                   layer: str | nn.Module | None = None, batch_size: int | None = None) -> torch.Tensor:
    """Guided Grad-CAM: the guided gradient ``(B, C, H, W)`` times the upsampled Grad-CAM map."""
    indices = resolve_target(handle, images, target)
    cam = gradcam(handle, images, indices, layer=layer, batch_size=batch_size)
    return guided_backprop(handle, images, indices, batch_size=batch_size) * cam

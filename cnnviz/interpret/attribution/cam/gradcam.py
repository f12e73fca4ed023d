"""Grad-CAM and guided Grad-CAM: where in a conv layer's map the class evidence sits.

Example:
    >>> from cnnviz import zoo, interpret
    >>> handle = zoo.load("efficientnet_lite0", device="cpu")
    >>> cam = interpret.gradcam(handle, handle.prepare([zoo.load_image("chelsea")]))
    >>> cam.shape
    torch.Size([1, 1, 224, 224])
"""

from __future__ import annotations

import torch

from cnnviz.interpret.attribution.cam.core import CamBatch, LayerArg, LayerView, Reshape, class_activation_maps
from cnnviz.interpret.attribution.guided import guided_backprop
from cnnviz.interpret.core.registry import method
from cnnviz.interpret.core.targets import Target, resolve_target
from cnnviz.zoo.handle import ModelHandle


def grad_cam_map(batch: CamBatch, view: LayerView) -> torch.Tensor:
    """Grad-CAM of one layer: the activation maps weighted by their mean gradient, summed."""
    return (view.grad.mean(dim=(2, 3), keepdim=True) * view.activation).sum(dim=1)


@method("gradcam", "attribution", "Grad-CAM: class evidence on a conv layer's grid, upsampled", group="cams", order=30)
def gradcam(handle: ModelHandle, images: torch.Tensor, target: Target = None, *,
            layer: LayerArg = None, upsample: bool = True, reshape: Reshape = "auto",
            batch_size: int | None = None) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al. 2017): ReLU of the activation maps weighted by their mean gradient.

    Good: cheap (one pass, backward only down to the layer), class-discriminative, robust; bad: coarse
    (the layer's grid, 7 x 7 on lite0's head), and the mean gradient cancels where gradients change sign.

    Measured on efficientnet_lite0 (chelsea, coffee, rocket; BENCHMARKS.md leaderboard, 2026-12-01):
    deletion AUC 0.122 (lower is better), insertion AUC 0.388 (higher is better).

    Args:
        layer: conv layer (dotted name or module), several (a list or ``"a,b"``, fused in [0, 1]);
            default: the model's default layer.
        upsample: resize the map bilinearly to the input size (else layer resolution; one layer only).
        reshape: how a token (ViT) or channels-last (Swin, ConvNeXt) layer becomes a grid: ``auto``,
            ``tokens``, ``channels_last``, ``channels_first`` or a function.
        batch_size: images per forward/backward pass (default: sized to the device).

    Returns:
        ``(B, 1, H, W)`` non-negative maps (unnormalized for one layer).
    """
    return class_activation_maps(handle, images, target, layer, grad_cam_map, reshape=reshape,
                                 upsample_to_input=upsample, batch_size=batch_size, desc="gradcam")


@method("guided_gradcam", "attribution", "guided Grad-CAM: guided backprop masked by Grad-CAM", group="cams", order=31)
def guided_gradcam(handle: ModelHandle, images: torch.Tensor, target: Target = None, *,
                   layer: LayerArg = None, batch_size: int | None = None) -> torch.Tensor:
    """Guided Grad-CAM: the guided gradient ``(B, C, H, W)`` times the upsampled Grad-CAM map."""
    indices = resolve_target(handle, images, target)
    cam = gradcam(handle, images, indices, layer=layer, batch_size=batch_size)
    return guided_backprop(handle, images, indices, batch_size=batch_size) * cam

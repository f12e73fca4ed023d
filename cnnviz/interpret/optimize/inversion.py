"""Feature inversion (Mahendran & Vedaldi 2015): what a layer's embedding still knows about the image.

Starting from gray noise, find the image whose embedding at ``layer`` matches
the original's, minimizing the normalized error
``||phi(x) - phi0||^2 / ||phi0||^2`` plus an alpha-norm (keeps pixels in a
natural range) and a total-variation term (keeps them piecewise smooth).
Early layers give back an almost exact photo; deep layers keep the object's
parts and lose their arrangement and colour. The regularizer weights grow
with the layer's depth, as in the paper's per-layer presets.

Invert a layer before a clipping activation rather than after it: past
EfficientNet-Lite0's final ReLU6 (``head``) most units pass no gradient and
the error stays above 0.9, while ``head.bn`` (the same features before the
clip) reconstructs to about 0.07 with the class kept.

Example:
    >>> from cnnviz import zoo, interpret
    >>> handle = zoo.load("efficientnet_lite0", device="cpu")
    >>> images = handle.prepare([zoo.load_image("chelsea")])
    >>> pictures = interpret.invert(handle, images, layer="blocks.2", steps=4, progress=False)
    >>> scores = interpret.inversion_scores(handle, images, pictures, "blocks.2")
    >>> sorted(scores)
    ['class_kept', 'error', 'original_class', 'reconstructed_class']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from cnnviz.interpret.core.activations import layer_output
from cnnviz.interpret.core.registry import method
from cnnviz.interpret.optimize import engine, objectives, param, transforms
from cnnviz.zoo.core import CnnvizError, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, preserve
from cnnviz.zoo.handle import ModelHandle, layer_depth

Parameterization = Literal["pixels", "fourier"]


@dataclass(frozen=True)
class InversionPreset:
    """Regularizer weights for one layer.

    Attributes:
        tv_weight: weight of the total variation (beta = 2).
        alpha_weight: weight of the alpha-norm (alpha = 6) around mid-gray.
        jitter: pixels of random shift per step (0: none).
        parameterization: ``pixels`` or ``fourier`` (decorrelated, 1/f: fewer
            high-frequency artefacts where the embedding leaves the pixels loose).
    """

    tv_weight: float
    alpha_weight: float
    jitter: int
    parameterization: Parameterization


def preset_for(handle: ModelHandle, layer: str) -> InversionPreset:
    """Per-layer preset: deeper layers keep less of the image, so they need more smoothing and jitter."""
    depth = layer_depth(handle.model, layer)
    side = handle.input_size
    return InversionPreset(tv_weight=1.0 + 19.0 * depth, alpha_weight=1.0,
                           jitter=round(depth * side / 56), parameterization="pixels")


@method("invert", "optimization", "feature inversion: the picture a layer's embedding remembers", order=120)
def invert(handle: ModelHandle, images: torch.Tensor, target: object = None, *, layer: str | None = None,
           steps: PositiveInt = 300, lr: PositiveFloat = 0.02, tv_weight: NonNegativeFloat | None = None, alpha_weight: NonNegativeFloat | None = None,
           jitter: NonNegativeInt | None = None, parameterization: Parameterization | None = None, seed: int = 0, progress: bool = True) -> torch.Tensor:
    """Reconstruct ``images`` from their embedding at ``layer``, all images in one batch.

    Args:
        images: the originals ``(B, C, H, W)`` in [0, 1].
        target: unused (inversion matches the whole embedding).
        layer: layer to invert (default: the model's default layer; list: ``cnnviz layers MODEL``).
        steps: Adam steps.
        lr: learning rate.
        tv_weight: total-variation weight (default: the layer's preset).
        alpha_weight: alpha-norm weight (default: the layer's preset).
        jitter: random shift in pixels per step (default: the layer's preset).
        parameterization: ``pixels`` or ``fourier`` (default: the layer's preset).

    Returns:
        Reconstructions ``(B, C, H, W)`` in [0, 1].
    """
    if images is None:
        raise CnnvizError("inversion needs the images to reconstruct: pass a batch")
    layer = layer or handle.default_layer
    preset = preset_for(handle, layer)
    with torch.no_grad():
        embedding = layer_output(handle, layer, images)
    objective = (objectives.feature_match(layer, embedding)
                 - (preset.tv_weight if tv_weight is None else tv_weight) * objectives.total_variation()
                 - (preset.alpha_weight if alpha_weight is None else alpha_weight) * objectives.alpha_norm())
    shift = preset.jitter if jitter is None else jitter
    image = param.make_image(parameterization or preset.parameterization, tuple(images.shape), images.device,
                             seed=seed)
    result = engine.optimize(handle, image, objective, steps=steps, lr=lr, seed=seed, progress=progress,
                             transforms=transforms.roll(shift) if shift else None, desc=f"inverting {layer}")
    return result.images


def inversion_scores(handle: ModelHandle, images: torch.Tensor, reconstructions: torch.Tensor,
                     layer: str) -> dict[str, list]:
    """Normalized reconstruction error per image and whether the model still predicts the original's class.

    Returns:
        ``error`` (``||phi(x) - phi0||^2 / ||phi0||^2``), ``original_class``,
        ``reconstructed_class`` and ``class_kept``, one entry per image.
    """
    with preserve(handle), torch.no_grad():
        original, rebuilt = (layer_output(handle, layer, x).flatten(1) for x in (images, reconstructions))
        error = (rebuilt - original).pow(2).sum(1) / original.pow(2).sum(1).clamp(min=1e-12)
        before, after = handle(images).argmax(1), handle(reconstructions).argmax(1)
    return {"error": error.tolist(), "original_class": before.tolist(), "reconstructed_class": after.tolist(),
            "class_kept": (before == after).tolist()}

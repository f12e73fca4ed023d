"""DeepDream (Mordvintsev et al. 2015): amplify whatever a layer already sees in a photo.

Gradient ascent on the photo itself, with each step normalized by its mean
magnitude, a random shift of the image before every step (jitter), and
octaves: the photo is dreamt at a small scale first, and each larger octave
starts from the photo plus the detail dreamt so far. Large images are
processed in tiles, so 2048 px and more fit in memory; the random shift
moves the tile grid every step, so no seams show.

Example:
    >>> from cnnviz import zoo, interpret
    >>> handle = zoo.load("efficientnet_lite0", device="cpu")
    >>> photo = handle.prepare([zoo.load_image("chelsea")])
    >>> dreamt = interpret.deepdream(handle, photo, octaves=2, steps=2, progress=False)  # layer blocks.10
    >>> dreamt.shape
    torch.Size([1, 3, 224, 224])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnviz.interpret.core.registry import method
from cnnviz.interpret.optimize import engine, objectives, param
from cnnviz.zoo.core import CnnvizError, NonNegativeFloat, NonNegativeInt, PositiveInt, ScaleFactor
from cnnviz.zoo.handle import ModelHandle, layer_at_depth

TILE = 512
TILE_ABOVE = 1024
DEPTH = 0.6  # the default layer: about 60 % of the way up, where eyes, fur and wheels emerge


class RandomShift:
    """A step hook that rolls the pixels by a random offset each step and can undo the total.

    Rolling the image itself (not a copy fed to the model) moves the content
    against the tile grid every step, which hides tile seams.
    """

    def __init__(self, max_shift: int) -> None:
        self.max_shift = max_shift
        self.total = (0, 0)

    @torch.no_grad()
    def __call__(self, image: nn.Module, step: int) -> None:
        dy, dx = torch.randint(-self.max_shift, self.max_shift + 1, (2,)).tolist()
        image.pixels.copy_(image.pixels.roll((dy, dx), dims=(2, 3)))
        self.total = (self.total[0] + dy, self.total[1] + dx)

    def undo(self, images: torch.Tensor) -> torch.Tensor:
        """``images`` rolled back to where they started."""
        return images.roll((-self.total[0], -self.total[1]), dims=(2, 3))


def octave_sizes(height: int, width: int, octaves: int, scale: float) -> list[tuple[int, int]]:
    """Image sizes from the smallest octave to the original."""
    if octaves < 1 or scale < 1:
        raise CnnvizError(f"need octaves >= 1 and octave_scale >= 1, got {octaves} and {scale}")
    return [(max(1, round(height / scale ** k)), max(1, round(width / scale ** k))) for k in reversed(range(octaves))]


def resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize (antialiased when shrinking); the identity at the same size."""
    if tuple(images.shape[-2:]) == size:
        return images
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)


@method("dream", "optimization", "DeepDream: amplify what a layer sees in a photo, octave by octave", order=130)
def deepdream(handle: ModelHandle, images: torch.Tensor, target: object = None, *, layer: str | None = None,
              channel: NonNegativeInt | None = None, octaves: PositiveInt = 4, octave_scale: ScaleFactor = 1.4, steps: PositiveInt = 10,
              lr: NonNegativeFloat = 0.01, jitter: NonNegativeInt = 32, tile: NonNegativeInt | None = None, seed: int = 0,
              progress: bool = True) -> torch.Tensor:
    """Dream on ``images``: maximize the mean squared activation of ``layer`` (or one channel's mean).

    Args:
        images: photos ``(B, C, H, W)`` in [0, 1], any size.
        target: unused (DeepDream amplifies a layer, not a class).
        layer: layer to amplify (default: the block about 60 % of the way up the network,
            e.g. ``blocks.10`` of EfficientNet-Lite0; list: ``cnnviz layers MODEL``).
        channel: amplify only this channel of the layer.
        octaves: number of scales, smallest first.
        octave_scale: size ratio between octaves.
        steps: normalized-ascent steps per octave.
        lr: step size in pixel units (each step's mean absolute change).
        jitter: largest random shift in pixels before each step.
        tile: compute gradients on square tiles of this side (default: 512 for images over 1024 px; 0: never).

    Returns:
        Dreamt images ``(B, C, H, W)`` in [0, 1].
    """
    if images is None:
        raise CnnvizError("DeepDream starts from a photo: pass images")
    layer = layer or layer_at_depth(handle.model, DEPTH)
    objective = objectives.dream(layer) if channel is None else objectives.channel(layer, channel)
    height, width = images.shape[-2:]
    if tile is None:
        tile = TILE if max(height, width) > TILE_ABOVE else 0
    detail = torch.zeros_like(images)
    for octave, size in enumerate(octave_sizes(height, width, octaves, octave_scale)):
        base = resize(images, size)
        shift = RandomShift(min(jitter, *size))
        image = param.PixelImage((base + resize(detail, size)).clamp(0, 1))
        result = engine.optimize(handle, image, objective, steps=steps, lr=lr, optimizer="normalized",
                                 every_step=shift, tile=tile or None, seed=seed + octave, progress=progress,
                                 desc=f"dream octave {octave + 1}/{octaves}")
        detail = shift.undo(result.images) - base
    return (images + detail).clamp(0, 1)

"""What a removed pixel becomes: the one declared choice behind every method that masks, occludes or deletes.

Methods work on [0, 1] pixels and the handle normalizes inside its forward, so "multiply the input by a
mask" means something different here than in a reference that multiplies the *normalized* tensor: there a
masked pixel becomes zero after normalization, which is the dataset's mean colour. ``dataset_mean`` is that
convention (pytorch-grad-cam's Score-CAM, captum's zero baselines and TorchRay's RISE in their standard
usage, on normalized inputs); ``black`` multiplies the [0, 1] pixels themselves. A model without
normalization (mean 0) gives the same pixels for both.

Example:
    >>> import torch
    >>> from cnnviz import zoo
    >>> handle = zoo.wrap(torch.nn.Flatten(), input_size=2, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    >>> [round(v, 3) for v in removed_pixels(handle, torch.rand(1, 3, 2, 2), "dataset_mean")[0, :, 0, 0].tolist()]
    [0.485, 0.456, 0.406]
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torchvision.transforms.functional import gaussian_blur

from cnnviz.zoo.core import CnnvizError
from cnnviz.zoo.handle import ModelHandle

Fill = Literal["dataset_mean", "black", "gray", "mean", "blur"]
FILLS: tuple[str, ...] = get_args(Fill)
FILL_HELP = ("dataset_mean (the model's normalization mean: zero after normalization, as references that mask "
             "the normalized tensor), black, gray (0.5), mean (the image's own channel mean) or blur (a blurred "
             "copy)")


def removed_pixels(handle: ModelHandle, images: torch.Tensor, fill: str) -> torch.Tensor:
    """What each pixel of ``images`` ``(B, C, H, W)`` becomes where a method removes it (see the module doc)."""
    if fill == "dataset_mean":
        return handle.mean.to(images.device, images.dtype).expand_as(images)
    if fill == "black":
        return torch.zeros_like(images)
    if fill == "gray":
        return torch.full_like(images, 0.5)
    if fill == "mean":
        return images.mean(dim=(2, 3), keepdim=True).expand_as(images)
    if fill == "blur":
        side = max(3, (min(images.shape[-2:]) // 10) | 1)
        return gaussian_blur(images, [side, side], [side / 3.0, side / 3.0])
    raise CnnvizError(f"unknown fill {fill!r}: choose from {', '.join(FILLS)}")

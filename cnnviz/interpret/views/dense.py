"""Drawing what segmentation models and detectors see: class masks and boxes over the image.

Nothing here computes a model: label maps and detections come in as tensors, pictures go out.

Example:
    >>> import torch
    >>> labels = torch.zeros(32, 32, dtype=torch.long); labels[8:20, 8:20] = 3
    >>> segmentation_overlay(torch.rand(3, 32, 32), labels).shape
    (32, 32, 3)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from cnnviz.interpret.core.dense_targets import explained_caption  # noqa: F401  (the views' face exports it)
from cnnviz.interpret.views.pixels import Color, to_uint8

REGION_COLOR: Color = (255, 64, 32)


def label_colors(count: int) -> np.ndarray:
    """``count`` distinct RGB colours, class 0 (background) black: hues spaced by the golden angle."""
    hues = (np.arange(count) * 0.618034) % 1.0
    sectors = np.floor(hues * 6).astype(int) % 6
    rise = hues * 6 - np.floor(hues * 6)
    table = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 1, 1], [0, 0, 1], [1, 0, 1]], dtype=float)
    after = np.roll(table, -1, axis=0)
    colors = table[sectors] + (after[sectors] - table[sectors]) * rise[:, None]
    colors = (55 + 200 * colors).astype(np.uint8)
    colors[0] = 0
    return colors


def segmentation_overlay(image: torch.Tensor, labels: torch.Tensor, *, alpha: float = 0.5) -> np.ndarray:
    """The image with each pixel tinted by the colour of its class (background left as is)."""
    base = to_uint8(image).astype(np.float32)
    index = labels.detach().cpu().numpy().astype(np.int64)
    tint = label_colors(int(index.max()) + 1)[index].astype(np.float32)
    keep = (index == 0)[..., None]
    return np.where(keep, base, (1 - alpha) * base + alpha * tint).clip(0, 255).astype(np.uint8)


def region_overlay(image: torch.Tensor, mask: torch.Tensor, *, color: Color = REGION_COLOR,
                   alpha: float = 0.45) -> np.ndarray:
    """The image with the explained region tinted and outlined.

    Example:
        >>> mask = torch.zeros(16, 16); mask[4:8, 4:8] = 1
        >>> region_overlay(torch.zeros(3, 16, 16), mask)[5, 5].tolist()
        [114, 28, 14]
    """
    base = to_uint8(image).astype(np.float32)
    inside = mask.detach().cpu().numpy() > 0
    tinted = np.where(inside[..., None], (1 - alpha) * base + alpha * np.array(color, np.float32), base)
    edge = inside & ~_eroded(inside)
    tinted[edge] = color
    return tinted.clip(0, 255).astype(np.uint8)


def _eroded(mask: np.ndarray) -> np.ndarray:
    padded = np.pad(mask, 1)
    return (padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:])


def boxes_overlay(image: torch.Tensor, boxes: torch.Tensor, texts: Sequence[str], *,
                  labels: Sequence[int] | None = None, highlight: int | None = None) -> np.ndarray:
    """The image with ``boxes`` ``(N, 4)`` drawn, each captioned with its text; ``highlight`` is drawn thicker.

    Example:
        >>> boxes_overlay(torch.zeros(3, 32, 32), torch.tensor([[2., 2., 20., 20.]]), ["dog 0.9"]).shape
        (32, 32, 3)
    """
    canvas = Image.fromarray(to_uint8(image))
    draw = ImageDraw.Draw(canvas)
    colors = label_colors(max(labels or [0]) + 2)
    for k, (box, text) in enumerate(zip(boxes.detach().cpu().tolist(), texts)):
        color = REGION_COLOR if k == highlight else tuple(int(c) for c in colors[(labels[k] if labels else k) + 1])
        draw.rectangle(box, outline=color, width=3 if k == highlight else 1)
        draw.text((box[0] + 2, box[1] + 1), text, fill=color)
    return np.asarray(canvas)


def explained_overlay(image: torch.Tensor, explained: object, detections: torch.Tensor | None = None,
                      class_name: Callable[[int], str] = str) -> np.ndarray:
    """The image with what a dense target explains drawn on it: a region target's pixels, or a box target's
    box on top of the detector's ``detections`` (``(N, 6)`` rows, numbered from 1 as ``--box`` takes them).

    Example:
        >>> from cnnviz.interpret.core import BoxScore
        >>> explained_overlay(torch.zeros(1, 32, 32), BoxScore((2, 2, 20, 20), 1)).shape
        (32, 32, 3)
    """
    mask = getattr(explained, "mask", None)
    if mask is not None:
        return region_overlay(image, mask)
    found = detections if detections is not None else torch.zeros(0, 6)
    texts = [f"{k + 1} {class_name(int(row[5]))} {row[4]:.2f}" for k, row in enumerate(found)]
    boxes = torch.cat([found[:, :4].detach().cpu(), explained.box[None]])  # the explained box drawn last, on top
    return boxes_overlay(image, boxes, [*texts, "explained"], highlight=len(texts),
                         labels=[int(v) for v in found[:, 5]] + [explained.label])

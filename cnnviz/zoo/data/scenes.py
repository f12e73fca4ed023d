"""Fashion-MNIST scenes: several items pasted on a larger black canvas, with their masks and boxes.

Segmentation and detection need labelled scenes, and none can be downloaded here; pasting Fashion-MNIST
items gives them offline, with labels that are exact by construction: an item's pixels are those of its
28 x 28 image above ``threshold``, its mask class is its label + 1 (0 is the background), and its box the
tight box around those pixels. Items never overlap (each is placed where its box is free), so masks and
boxes agree. Scenes are drawn from a private generator: the same seed gives the same scenes, and the
global RNG is left as it was. Build training scenes from the training split and held-out scenes from
the test split (:func:`fashion_scenes` does).

Example:
    >>> import torch
    >>> from cnnviz.zoo.data.datasets import synthetic
    >>> scenes = paste_scenes(synthetic(20, classes=4), count=3, canvas=96, items=(2, 3), seed=0)
    >>> scenes.images.shape, scenes.masks.shape, len(scenes.boxes)
    (torch.Size([3, 1, 96, 96]), torch.Size([3, 96, 96]), 3)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cnnviz.zoo.data.datasets import DATASETS, FASHION_MNIST_CLASSES, TensorData, read_idx_split
from cnnviz.zoo.core.errors import CnnvizError

PLACEMENT_TRIES = 200


@dataclass(frozen=True)
class Scenes:
    """Pasted scenes and their labels.

    Attributes:
        images: ``(N, 1, S, S)`` floats in [0, 1].
        masks: ``(N, S, S)`` int64, 0 for background, ``label + 1`` on an item's pixels.
        boxes: per scene ``(n, 4)`` float boxes ``x0, y0, x1, y1`` (``x1``, ``y1`` one past the last pixel).
        labels: per scene ``(n,)`` int64 item labels (the source dataset's classes, from 0).
        classes: the source dataset's class names.
    """

    images: torch.Tensor
    masks: torch.Tensor
    boxes: list[torch.Tensor]
    labels: list[torch.Tensor]
    classes: tuple[str, ...]

    @property
    def mask_classes(self) -> tuple[str, ...]:
        """Names of the mask values: ``background`` then the item classes."""
        return ("background", *self.classes)


def paste_scenes(source: TensorData, *, count: int, canvas: int = 96, items: tuple[int, int] = (2, 4),
                 threshold: float = 0.1, seed: int = 0, classes: tuple[str, ...] | None = None) -> Scenes:
    """``count`` scenes of ``canvas`` x ``canvas`` pixels, each with a random number of items in the
    inclusive range ``items``, drawn from ``source`` (uint8 ``(N, 1, h, w)`` images with labels). An item
    for which the items already placed leave no room is left out, so a crowded scene holds fewer; the first
    always fits.

    Raises:
        CnnvizError: a canvas smaller than an item, or an empty or reversed item range.
    """
    side_h, side_w = source.images.shape[-2:]
    fewest, most = items
    if count < 1:
        raise CnnvizError(f"count must be at least 1, got {count}")
    if not 1 <= fewest <= most:
        raise CnnvizError(f"items is a range (fewest, most) with 1 <= fewest <= most, got {items}")
    if canvas < max(side_h, side_w):
        raise CnnvizError(f"the canvas ({canvas} px) is smaller than an item ({side_h} x {side_w} px)")
    if len(source) == 0:
        raise CnnvizError("no items to paste: the source dataset is empty")
    generator = torch.Generator().manual_seed(seed)
    images = torch.zeros(count, 1, canvas, canvas)
    masks = torch.zeros(count, canvas, canvas, dtype=torch.long)
    boxes, labels = [], []
    for scene in range(count):
        wanted = int(torch.randint(fewest, most + 1, (), generator=generator))
        scene_boxes: list[list[float]] = []
        scene_labels: list[int] = []
        for _ in range(wanted):
            pick = int(torch.randint(len(source), (), generator=generator))
            item = source.images[pick, 0].float() / 255.0
            on = item > threshold
            if not on.any():
                continue
            rows, cols = on.any(1).nonzero()[:, 0], on.any(0).nonzero()[:, 0]
            top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
            placed = _place(scene_boxes, bottom - top, right - left, canvas, generator)
            if placed is None:  # the items already there leave no room: the scene keeps fewer
                continue
            y, x = placed
            crop, region = item[top:bottom, left:right], on[top:bottom, left:right]
            window = images[scene, 0, y:y + crop.shape[0], x:x + crop.shape[1]]
            window.copy_(torch.where(region, crop, window))
            masks[scene, y:y + crop.shape[0], x:x + crop.shape[1]][region] = int(source.labels[pick]) + 1
            scene_boxes.append([float(x), float(y), float(x + crop.shape[1]), float(y + crop.shape[0])])
            scene_labels.append(int(source.labels[pick]))
        boxes.append(torch.tensor(scene_boxes, dtype=torch.float32).view(-1, 4))
        labels.append(torch.tensor(scene_labels, dtype=torch.long))
    names = classes or tuple(str(i) for i in range(int(source.labels.max()) + 1))
    return Scenes(images, masks, boxes, labels, tuple(names))


def _place(taken: list[list[float]], height: int, width: int, canvas: int,
           generator: torch.Generator) -> tuple[int, int] | None:
    """A top-left corner where a ``height`` x ``width`` box overlaps none of ``taken``, or None."""
    for _ in range(PLACEMENT_TRIES):
        y = int(torch.randint(canvas - height + 1, (), generator=generator))
        x = int(torch.randint(canvas - width + 1, (), generator=generator))
        if all(x >= b[2] or x + width <= b[0] or y >= b[3] or y + height <= b[1] for b in taken):
            return y, x
    return None


def fashion_scenes(count: int, *, split: str = "train", canvas: int = 96, items: tuple[int, int] = (2, 4),
                   seed: int = 0) -> Scenes:
    """Scenes from Fashion-MNIST's ``train`` or ``test`` split (held-out scenes: ``test``).

    Example:
        >>> fashion_scenes(2, split="test").classes[7]  # doctest: +NEEDS_FASHION_MNIST
        'Sneaker'
    """
    if split not in ("train", "test"):
        raise CnnvizError(f"split is 'train' or 'test', got {split!r}")
    spec = DATASETS["fashion-mnist"]
    if not spec.default_dir.is_dir():
        raise CnnvizError(f"Fashion-MNIST is not at {spec.default_dir}: {spec.install_hint}")
    source = read_idx_split(spec.default_dir, "train" if split == "train" else "t10k")
    return paste_scenes(source, count=count, canvas=canvas, items=items, seed=seed,
                        classes=tuple(FASHION_MNIST_CLASSES))

"""Zoo entry ``fashion_seg``: a small fully convolutional segmenter of Fashion-MNIST scenes, trained here, shipped.

No segmentation weights can be had offline, so one is trained on :mod:`zoo.data.scenes` by the same
runner and loop as ``cnnviz train`` (:mod:`zoo.train.scenes`), in a few minutes on a CPU; ``cnnviz train
--model fashion_seg`` rebuilds it. Its log (``zoo/weights/fashion_seg-log.json``) holds the recipe, the
history and the mean IoU on held-out scenes pasted from Fashion-MNIST's test split.

Example:
    >>> from cnnviz import zoo
    >>> seg = zoo.load("fashion_seg", device="cpu")
    >>> seg.config.task, seg.classes[8], seg.input_size
    ('segmentation', 'Sneaker', 64)
"""

from __future__ import annotations

from pathlib import Path

from cnnviz.zoo.catalog.registry import register
from cnnviz.zoo.catalog.shipped_scenes import shipped_scene_model
from cnnviz.zoo.handle.handle import ModelHandle
from cnnviz.zoo.handle.weights import WEIGHTS_DIR
from cnnviz.zoo.models.fashion_segmenter import SEG_NAME, seg_handle


@register(SEG_NAME, "small fully convolutional segmenter of Fashion-MNIST scenes, 64px gray, 11 classes (ships here)",
          lambda: WEIGHTS_DIR / f"{SEG_NAME}.pt")
def build_fashion_seg(weights: str | Path | None = "pretrained") -> ModelHandle:
    """The shipped Fashion-MNIST scene segmenter (or its architecture with other or random weights)."""
    return shipped_scene_model(SEG_NAME, seg_handle, weights)

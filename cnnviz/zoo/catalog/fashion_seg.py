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

from cnnviz.zoo.catalog.shipped_scenes import register_scene_model
from cnnviz.zoo.models.fashion_segmenter import SEG_NAME, seg_handle

build_fashion_seg = register_scene_model(
    SEG_NAME, "small fully convolutional segmenter of Fashion-MNIST scenes, 64px gray, 11 classes (ships here)",
    seg_handle)

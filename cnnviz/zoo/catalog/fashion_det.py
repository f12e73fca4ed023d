"""Zoo entry ``fashion_det``: a small detector of Fashion-MNIST scenes (FCOS head), trained here, shipped.

No detection weights can be had offline, so one is trained on :mod:`zoo.data.scenes` by the same
runner and loop as ``cnnviz train``, with the detector's own loss (:mod:`zoo.train.scenes`), in a few
minutes on a CPU; ``cnnviz train --model fashion_det`` rebuilds it. Its log
(``zoo/weights/fashion_det-log.json``) holds the recipe, the history and the mAP@0.5 on held-out scenes
pasted from Fashion-MNIST's test split.

Example:
    >>> from cnnviz import zoo
    >>> det = zoo.load("fashion_det", device="cpu")
    >>> det.config.task, det.classes[7], det.input_size
    ('detection', 'Sneaker', 64)
"""

from __future__ import annotations

from cnnviz.zoo.catalog.shipped_scenes import register_scene_model
from cnnviz.zoo.models.fashion_detector import DET_NAME, det_handle

build_fashion_det = register_scene_model(
    DET_NAME, "small detector of Fashion-MNIST scenes (FCOS head), 64px gray, 10 classes (ships here)",
    det_handle)

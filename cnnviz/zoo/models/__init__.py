"""Architectures only: the trainable CNNs, EfficientNet-Lite, torchvision's dense models (and their packed
detections), and the scene nets of ``fashion_seg`` and ``fashion_det``. Imports zoo's core and handle; never
data.

Example:
    >>> from cnnviz.zoo.models import CnnSpec, cnn_handle
    >>> cnn_handle(CnnSpec("lenet5"), mean=(0.5,), std=(0.5,), classes=[str(i) for i in range(10)]).input_size
    28
"""

from cnnviz.zoo.models import cnns
from cnnviz.zoo.models.cnns import ACTIVATIONS, ARCHITECTURES, BasicBlock, CnnSpec, cnn_handle
from cnnviz.zoo.models.efficientnet_lite import VARIANTS, EfficientNetLite, MBConv
from cnnviz.zoo.models.fashion_detector import det_handle, fashion_detector
from cnnviz.zoo.models.fashion_segmenter import FashionSegmenter, seg_handle
from cnnviz.zoo.models.torchvision_dense import (DETECTION_FIELDS, build_dense, dense_config, dense_task, detect,
                                                 pack_detections, unpack_detections)

__all__ = [
    "ACTIVATIONS", "ARCHITECTURES", "BasicBlock", "CnnSpec", "DETECTION_FIELDS", "EfficientNetLite",
    "FashionSegmenter", "MBConv", "VARIANTS", "build_dense", "cnn_handle", "cnns", "dense_config", "dense_task",
    "det_handle", "detect", "fashion_detector", "pack_detections", "seg_handle", "unpack_detections",
]

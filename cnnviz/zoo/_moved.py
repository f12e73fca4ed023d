"""Where the flat layout's modules went: ``import cnnviz.zoo.sources``-style paths of the old flat ``zoo/`` keep
importing, with a warning naming the new home (the finder is :class:`zoo.core.MovedFinder`).

Example:
    >>> MOVED["training"], MOVED["fashion_det"]
    ('cnnviz.zoo.train.loop', 'cnnviz.zoo.catalog.fashion_det')
"""

from __future__ import annotations

from cnnviz.zoo.core.moved import install_moved

MOVED = {
    "errors": "cnnviz.zoo.core.errors",
    "checks": "cnnviz.zoo.core.checks",
    "guard": "cnnviz.zoo.core.guard",
    "hooks": "cnnviz.zoo.core.hooks",
    "device": "cnnviz.zoo.core.device",
    "jsonfile": "cnnviz.zoo.core.jsonfile",
    "config": "cnnviz.zoo.handle.config",
    "outputs": "cnnviz.zoo.handle.outputs",
    "layers": "cnnviz.zoo.handle.layers",
    "weights": "cnnviz.zoo.handle.weights",
    "compiled": "cnnviz.zoo.handle.compiled",
    "images": "cnnviz.zoo.data.images",
    "image_data": "cnnviz.zoo.data.image_data",
    "datasets": "cnnviz.zoo.data.datasets",
    "scenes": "cnnviz.zoo.data.scenes",
    "imagenet": "cnnviz.zoo.data.imagenet",
    "cnns": "cnnviz.zoo.models.cnns",
    "efficientnet_lite": "cnnviz.zoo.models.efficientnet_lite",
    "dense": "cnnviz.zoo.models.torchvision_dense",
    "torchvision_models": "cnnviz.zoo.catalog.classics",
    "registry": "cnnviz.zoo.catalog.registry",
    "fashion": "cnnviz.zoo.catalog.fashion_cnn",
    "fashion_seg": "cnnviz.zoo.catalog.fashion_seg",
    "fashion_det": "cnnviz.zoo.catalog.fashion_det",
    "training": "cnnviz.zoo.train.loop",
    "training_log": "cnnviz.zoo.train.log",
    "diagnostics": "cnnviz.zoo.train.diagnostics",
    "detection_map": "cnnviz.zoo.train.metrics",
    "detection_objective": "cnnviz.zoo.train.objectives",
    "scene_training": "cnnviz.zoo.train.scenes",
}


def install() -> None:
    """Put zoo's finder on ``sys.meta_path`` once."""
    install_moved("cnnviz.zoo", MOVED)

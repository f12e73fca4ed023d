"""The names ``zoo.load`` knows, one small file per entry: EfficientNet-Lite, the torchvision classics,
``fashion_cnn`` and the untrained CNNs, ``fashion_seg``, ``fashion_det``. Importing this face registers them,
in this order (the first is the default model).

Example:
    >>> from cnnviz.zoo import catalog
    >>> catalog.names()[0], "fashion_det" in catalog.names()
    ('efficientnet_lite0', True)
"""

# Registering, in this order (the first is the default model):
from cnnviz.zoo.catalog import efficientnet_lite, classics  # noqa: F401,I001
from cnnviz.zoo.catalog import fashion_cnn, untrained, fashion_seg, fashion_det  # noqa: F401,I001
from cnnviz.zoo.catalog.classics import CLASSICS, cached_weights_path, classic_config
from cnnviz.zoo.catalog.efficientnet_lite import lite_config, shipped_weights_path
from cnnviz.zoo.catalog.fashion_cnn import fashion_log_path, fashion_weights_path
from cnnviz.zoo.catalog.registry import ModelEntry, entry, names, register
from cnnviz.zoo.catalog.shipped_scenes import shipped_scene_model

__all__ = [
    "CLASSICS", "ModelEntry", "cached_weights_path", "classic_config", "entry", "fashion_log_path",
    "fashion_weights_path", "lite_config", "names", "register", "shipped_scene_model", "shipped_weights_path",
]

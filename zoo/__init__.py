"""cnnviz model zoo: pretrained and trainable CNNs behind one handle type.

Example:
    >>> import zoo
    >>> handle = zoo.load("efficientnet_lite0", device="cpu")
    >>> handle.classes[967]
    'espresso'
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from zoo import efficientnet_lite as _lite  # noqa: F401  (registers the models, default first)
from zoo import torchvision_models as _classics  # noqa: F401  (registers the classics)
from zoo import fashion as _fashion  # noqa: F401  (registers fashion_cnn and the trainable CNNs)
from zoo.device import pick_device
from zoo.errors import CnnvizError
from zoo.handle import ModelHandle, as_handle
from zoo.weights import load_weights, read_checkpoint
from zoo.weights import read_checkpoint as load_state_dict_file
from zoo.images import atomic_write, load_image, load_images, sample_names, save_array, save_image
from zoo.layers import layer_name, resolve_layer
from zoo.config import ModelConfig
from zoo.registry import entry, names, register
from zoo.sources import load, model_config, parse_source, read_classes


def wrap(
    module: nn.Module,
    *,
    input_size: int = 224,
    mean: tuple[float, ...] = (0.0, 0.0, 0.0),
    std: tuple[float, ...] = (1.0, 1.0, 1.0),
    classes: list[str] | None = None,
    default_layer: str | None = None,
    weights: str | Path | None = None,
    name: str | None = None,
) -> ModelHandle:
    """Make a handle of your own model, optionally loading a checkpoint.

    The checkpoint is read with ``torch.load(weights_only=True)``.

    Example:
        >>> import torchvision
        >>> handle = wrap(torchvision.models.resnet18(num_classes=10), input_size=32,
        ...               mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), default_layer="layer4")
        >>> handle.input_size
        32
    """
    if weights is not None:
        load_weights(module, weights)
    if default_layer is not None:
        resolve_layer(module, default_layer)
    param = next(module.parameters(), None)
    handle = ModelHandle(module, name=name or type(module).__name__, input_size=input_size, mean=mean,
                         std=std, classes=classes, default_layer=default_layer)
    return handle.to(param.device) if param is not None else handle


__all__ = [
    "CnnvizError", "ModelConfig", "ModelHandle", "load_weights", "model_config", "parse_source", "read_checkpoint",
    "read_classes", "as_handle", "atomic_write", "save_array", "entry", "layer_name", "load", "load_image", "load_images",
    "load_state_dict_file", "names", "pick_device", "register", "resolve_layer", "sample_names",
    "save_image", "wrap",
]

"""cnnviz model zoo: pretrained and trainable CNNs behind one handle type.

Example:
    >>> from cnnviz import zoo
    >>> handle = zoo.load("efficientnet_lite0", device="cpu")
    >>> handle.classes[967]
    'espresso'
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from cnnviz.zoo import efficientnet_lite as _lite  # noqa: F401  (registers the models, default first)
from cnnviz.zoo import torchvision_models as _classics  # noqa: F401  (registers the classics)
from cnnviz.zoo import fashion as _fashion  # noqa: F401  (registers fashion_cnn and the trainable CNNs)
from cnnviz.zoo import fashion_seg as _fashion_seg  # noqa: F401  (registers fashion_seg)
from cnnviz.zoo import fashion_det as _fashion_det  # noqa: F401  (registers fashion_det)
from cnnviz.zoo.dense import pack_detections, unpack_detections
from cnnviz.zoo.device import pick_device
from cnnviz.zoo.errors import CnnvizError
from cnnviz.zoo.file_names import safe_name
from cnnviz.zoo.handle import ModelHandle, as_handle, input_channels, on_model_device
from cnnviz.zoo.outputs import OutputSelector, select_logits
from cnnviz.zoo.weights import load_weights, read_checkpoint
from cnnviz.zoo.weights import read_checkpoint as load_state_dict_file
from cnnviz.zoo.images import (atomic_write, load_image, load_images, sample_names, save_array, save_image,
                        scene_names)
from cnnviz.zoo.layers import guess_cam_layer, layer_name, resolve_layer
from cnnviz.zoo.config import ModelConfig
from cnnviz.zoo.registry import entry, names, register
from cnnviz.zoo.sources import load, model_config, parse_source, read_classes


def wrap(
    module: nn.Module,
    *,
    input_size: int = 224,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    classes: list[str] | None = None,
    default_layer: str | None = None,
    weights: str | Path | None = None,
    name: str | None = None,
    resize_size: int | None = None,
    fixed_input: bool = False,
    output: OutputSelector = None,
) -> ModelHandle:
    """Make a handle of your own model, optionally loading a checkpoint.

    The checkpoint is read with ``torch.load(weights_only=True)``. Without ``mean``/``std``
    the model gets images in [0, 1] as they are; without ``default_layer`` CAM methods use
    :func:`~zoo.layers.guess_cam_layer`'s. ``output`` says where the logits are when the
    model returns a dict, tuple or dataclass (:func:`zoo.outputs.select_logits`). For a model
    in a file, a torchvision or timm name, or a saved program, use :func:`zoo.load`.

    Example:
        >>> import torchvision
        >>> handle = wrap(torchvision.models.resnet18(num_classes=10), input_size=32,
        ...               mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), default_layer="layer4")
        >>> handle.input_size
        32
    """
    if weights is not None:
        load_weights(module, weights)
    channels = len(mean) if mean is not None else input_channels(module)
    handle = ModelHandle(module, name=name or type(module).__name__, input_size=input_size,
                         mean=mean if mean is not None else (0.0,) * channels,
                         std=std if std is not None else (1.0,) * channels, classes=classes,
                         default_layer=default_layer or guess_cam_layer(module), resize_size=resize_size,
                         fixed_input=fixed_input, output=output)
    return on_model_device(handle)


__all__ = [
    "CnnvizError", "ModelConfig", "ModelHandle", "load_weights", "model_config", "parse_source", "read_checkpoint",
    "read_classes", "select_logits", "guess_cam_layer", "as_handle", "atomic_write", "save_array", "entry", "layer_name", "load", "load_image", "load_images",
    "load_state_dict_file", "names", "pick_device", "register", "resolve_layer", "sample_names", "scene_names",
    "save_image", "wrap", "pack_detections", "unpack_detections", "safe_name",
]

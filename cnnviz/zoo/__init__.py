"""cnnviz model zoo: pretrained and trainable CNNs behind one handle type.

This face re-exports what a user needs; behind it, one floor per concern, each importing only those below:
``core`` (errors, checks, guard, hooks, device, JSON and atomic files, padding, the moved-module finder),
``handle`` (handle, config, outputs, layers, weights, compiled), ``data`` (images, collections, data
sets, scenes, ImageNet names), ``models`` (architectures only), ``train`` (loop, checkpoints, LR range, log,
diagnostics, metrics, objectives, the runner), ``catalog`` (the names :func:`load` knows) and ``sources``
(where a model comes from). ``import cnnviz.zoo`` does not load the training loop.

Example:
    >>> from cnnviz import zoo
    >>> handle = zoo.load("efficientnet_lite0", device="cpu")
    >>> handle.classes[967]
    'espresso'
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from torch import nn

from cnnviz.zoo import _moved
from cnnviz.zoo import catalog  # registers the zoo's models, the default first
from cnnviz.zoo.catalog import entry, names, register
from cnnviz.zoo.core import CnnvizError, atomic_write, pick_device, safe_name
from cnnviz.zoo.data import load_image, load_images, sample_names, save_array, save_image, scene_names
from cnnviz.zoo.models import pack_detections, unpack_detections
from cnnviz.zoo.handle import (
    ModelConfig, ModelHandle, OutputSelector, as_handle, guess_cam_layer, input_channels, layer_name, load_weights,
    on_model_device, read_checkpoint, resolve_layer, select_logits,
)
from cnnviz.zoo.handle import read_checkpoint as load_state_dict_file
from cnnviz.zoo.sources import load, model_config, parse_source, read_classes

_moved.install()  # the flat layout's paths (cnnviz.zoo.sources, cnnviz.zoo.training, ...) still import, with a warning


def __getattr__(name: str) -> Any:
    """``zoo.errors``-style attributes of the flat layout's modules, through the same warning."""
    if name in _moved.MOVED:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    :func:`~zoo.handle.guess_cam_layer`'s. ``output`` says where the logits are when the
    model returns a dict, tuple or dataclass (:func:`zoo.handle.select_logits`). For a model
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

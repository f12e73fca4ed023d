"""Addressing layers by dotted name, with suggestions for typos."""

from __future__ import annotations

from torch import nn

from zoo.errors import CnnvizError, closest


def resolve_layer(model: nn.Module, layer: str | nn.Module) -> nn.Module:
    """The submodule of ``model`` at dotted path ``layer`` (or ``layer`` itself).

    Example:
        >>> import torchvision
        >>> resolve_layer(torchvision.models.resnet18(), "layer4.1.conv2")
        Conv2d(512, 512, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)
    """
    if isinstance(layer, nn.Module):
        if not any(m is layer for m in model.modules()):
            raise CnnvizError(f"the {type(layer).__name__} given as layer is not part of this model")
        return layer
    if not isinstance(layer, str) or not layer:
        raise CnnvizError(f"a layer is a dotted name such as 'features.3' or a module, got {layer!r}")
    try:
        return model.get_submodule(layer)
    except AttributeError:
        names = [name for name, _ in model.named_modules() if name]
        raise CnnvizError(
            f"no layer {layer!r} in {type(model).__name__}{closest(layer, names)}"
            " (list them with: cnnviz layers MODEL)"
        ) from None


def layer_name(model: nn.Module, module: nn.Module) -> str:
    """The dotted name of ``module`` inside ``model``."""
    for name, candidate in model.named_modules():
        if candidate is module:
            return name
    raise CnnvizError(f"the {type(module).__name__} is not part of this model")

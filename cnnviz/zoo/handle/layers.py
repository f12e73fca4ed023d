"""Addressing layers by dotted name, with suggestions for typos."""

from __future__ import annotations

from torch import nn

from cnnviz.zoo.core.errors import CnnvizError, closest


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


def layer_depth(model: nn.Module, layer: str | nn.Module) -> float:
    """Where ``layer`` sits among ``model``'s modules, from 0 (the first) to 1 (the last)."""
    modules = [module for name, module in model.named_modules() if name]
    wanted = resolve_layer(model, layer)
    position = next(i for i, module in enumerate(modules) if module is wanted)
    return position / max(len(modules) - 1, 1)


def layer_at_depth(model: nn.Module, depth: float) -> str:
    """The block-level layer (a name with at most one dot) nearest to ``depth`` in [0, 1].

    Example:
        >>> import torchvision
        >>> layer_at_depth(torchvision.models.resnet18(), 0.6)
        'layer3.1'
    """
    names = [name for name, _ in model.named_modules() if name and name.count(".") <= 1]
    if not names:
        raise CnnvizError(f"{type(model).__name__} has no submodules to choose from")
    return min(names, key=lambda name: abs(layer_depth(model, name) - depth))


# Top-level children that hold the classifier, not features (names as torchvision and timm use them).
HEAD_NAMES = ("fc", "head", "heads", "classifier", "last_linear", "logits")


def guess_cam_layer(model: nn.Module) -> str | None:
    """A sensible default layer for CAM methods: the last top-level block with weights before the classifier.

    Reads the module tree only (no forward pass): ResNet gives ``layer4``, VGG, DenseNet, ConvNeXt
    and EfficientNet give ``features``, a torchvision ViT its ``encoder``; None when nothing fits.

    Example:
        >>> import torchvision
        >>> guess_cam_layer(torchvision.models.resnet18()), guess_cam_layer(torchvision.models.vgg11())
        ('layer4', 'features')
    """
    last_linear = None
    for candidate in model.modules():
        if isinstance(candidate, nn.Linear):
            last_linear = candidate
    chosen = None
    for name, child in model.named_children():
        if name in HEAD_NAMES or any(m is last_linear for m in child.modules()):
            continue
        if next(child.parameters(), None) is not None:
            chosen = name
    return chosen

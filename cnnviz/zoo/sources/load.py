"""Where a model comes from: one string names it, for ``--model`` and ``zoo.load`` alike.

=====================================  =====================================================  ============
source                                  weights                                                layer hooks
=====================================  =====================================================  ============
``efficientnet_lite0`` (a zoo name)     shipped, torch hub cache, or ``weights=PATH``          yes
``torchvision:NAME``                    ``weights=PATH`` or torchvision's local cache          yes
``timm:NAME``                           ``weights=PATH`` or the local Hugging Face/timm cache  yes
``path/to/file.py:FACTORY``             what the factory builds, or ``weights=PATH``           yes
``model.pt`` saved by ``torch.jit``     inside the file (TorchScript)                          no
``model.pt2`` saved by ``torch.export`` inside the file (exported program, unflattened)        yes
``runs/NAME/`` of ``cnnviz train``      the run's ``NAME.pt``; its log gives the architecture  yes
=====================================  =====================================================  ============

``weights="pretrained"`` (the default) takes the weights each source names above and fails with
a clear message naming the file it looked for when they are absent; nothing is ever downloaded.
``weights=None`` (``--weights random``) builds random weights. Methods that need a named layer
(CAM, feature maps, inversion, DeepDream, the atlas) need hooks; input methods (occlusion,
gradients, integrated gradients, SmoothGrad, attacks, RISE) run on every source.

A user file may hold a module-level ``CNNVIZ_CONFIG = {"input_size": 32, "mean": [...], ...}``
(fields of :class:`~zoo.handle.ModelConfig`); TorchScript and exported programs may carry the
same JSON as the extra file ``cnnviz_config.json``. Arguments given to :func:`load` override both.

Example:
    >>> handle = load("torchvision:resnet18", weights=None, num_classes=10, input_size=64)
    >>> handle.config.num_classes, handle.default_layer, handle.config.source
    (10, 'layer4', 'torchvision:resnet18')
"""

from __future__ import annotations

import dataclasses
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnviz.zoo.catalog.registry import entry, names
from cnnviz.zoo.core.device import pick_device
from cnnviz.zoo.core.errors import CnnvizError, closest
from cnnviz.zoo.handle.config import ModelConfig
from cnnviz.zoo.handle.handle import CompileMode, ModelHandle, Precision
from cnnviz.zoo.handle.outputs import OutputSelector
from cnnviz.zoo.models.torchvision_dense import dense_config, dense_task
from cnnviz.zoo.sources.building import Weights
from cnnviz.zoo.sources.classes import read_classes
from cnnviz.zoo.sources.hub import build_timm, build_torchvision, timm_config, torchvision_config
from cnnviz.zoo.sources.programs import build_export, build_file, build_torchscript
from cnnviz.zoo.sources.runs import build_run


def load(source: str, device: str | torch.device | None = None, weights: Weights = "pretrained", *,
         num_classes: int | None = None, classes: Sequence[str] | str | Path | None = None,
         input_size: int | None = None, mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
         layer: str | None = None, model_args: Mapping[str, Any] | None = None,
         output: OutputSelector = None, precision: Precision = "fp32",
         compile: CompileMode = "auto") -> ModelHandle:
    """Build the model ``source`` names, in eval mode on ``device``, with its configuration.

    Args:
        source: a zoo name, ``torchvision:NAME``, ``timm:NAME``, ``file.py:FACTORY``, a TorchScript
            or ``.pt2`` file, or a ``cnnviz train`` output folder (see the module docstring).
        device: ``"cpu"``, ``"cuda"``, ... or None for the best available.
        weights: ``"pretrained"`` (the source's own, never downloaded), a checkpoint path, or
            None for random weights.
        num_classes: size of the classifier (default: the source's, or what the checkpoint implies).
        classes: class names, or a file of them (one a line, or a JSON list).
        input_size, mean, std, layer: override the source's configuration (``layer`` is the
            default CAM layer).
        model_args: keyword arguments for a ``file.py:FACTORY`` (``--model-args`` JSON).
        output: where the logits are in the model's output (see :func:`zoo.handle.select_logits`).
        precision: ``fp32`` (default), or opt-in ``bf16`` / ``fp16`` autocast (see ``ModelHandle.precision``).
        compile: ``auto`` (default), ``on`` or ``off``: a compiled forward for forward-only methods
            (see ``ModelHandle.compile_mode`` and :mod:`zoo.handle.compiled`).

    Example:
        >>> load("efficientnet_lite0", device="cpu").classes[967]
        'espresso'
    """
    if not isinstance(source, str) or not source.strip():
        raise CnnvizError(f"a model is named by a string (see cnnviz models --help), got {source!r}")
    names_list = read_classes(classes) if isinstance(classes, (str, Path)) else classes
    if names_list is not None and num_classes is None:
        num_classes = len(names_list)
    kind, name = parse_source(source)
    handle = _BUILDERS[kind](name, weights, num_classes=num_classes, model_args=dict(model_args or {}))
    if input_size is not None and handle.config.fixed_input and input_size != handle.input_size:
        raise CnnvizError(f"{source} takes only {handle.input_size} px inputs (its input size is fixed): "
                          "drop --input-size")
    handle.config = handle.config.replace(
        classes=tuple(names_list) if names_list is not None else None, input_size=input_size,
        mean=tuple(mean) if mean is not None else None, std=tuple(std) if std is not None else None,
        default_layer=layer)
    if mean is not None or std is not None:
        _check_channels(handle)
    if output is not None:
        handle.output = output
    handle = handle.to(pick_device(device)).eval()
    handle.precision = precision
    handle.compile_mode = compile
    return handle


def _check_channels(handle: ModelHandle) -> None:
    """A normalization given by the user has one value per channel that the first convolution takes (read off
    its weights; a model's own configuration is trusted, since its first layer may not be a convolution)."""
    first = next(((name, m) for name, m in handle.model.named_modules() if isinstance(m, nn.Conv2d)), None)
    if first is None or first[1].in_channels == handle.in_channels:
        return
    name, conv = first
    raise CnnvizError(f"the normalization (--mean/--std, mean=/std=) has {handle.in_channels} value(s) but "
                      f"{handle.name}'s first convolution {name!r} takes {conv.in_channels} channels: give "
                      f"{conv.in_channels} values, one per channel (e.g. --mean {','.join(['0.5'] * conv.in_channels)})")


def parse_source(source: str) -> tuple[str, str]:
    """``(kind, name)`` of a model source string; unknown names get the closest zoo names."""
    for prefix in ("torchvision", "timm"):
        if source.startswith(prefix + ":"):
            return prefix, source[len(prefix) + 1:]
    if ".py:" in source:
        return "file", source
    path = Path(source)
    if source in names():
        return "zoo", source
    if path.is_dir():
        return "run", source
    if path.exists():
        if not path.is_file():
            raise CnnvizError(f"{source} is not a regular file: give a model file or folder")
        return _saved_kind(path), source
    if source.endswith((".pt", ".pth", ".pt2", ".ts", ".py")) or "/" in source:
        raise CnnvizError(f"no model file at {source}: check the path (a Python file is named as file.py:FACTORY)")
    raise CnnvizError(f"unknown model {source!r}{closest(source, names())}; a model is a zoo name "
                      "(cnnviz models), torchvision:NAME, timm:NAME, file.py:FACTORY, a TorchScript or .pt2 "
                      "file, or a cnnviz train folder")


def _saved_kind(path: Path) -> str:
    if path.suffix == ".pt2":
        return "export"
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            entries = archive.namelist()
        if any("/code/" in e for e in entries) and any(e.endswith("constants.pkl") for e in entries):
            return "torchscript"
        if any(e.endswith("archive_format") or "/models/" in e for e in entries):
            return "export"
    raise CnnvizError(f"{path} is not a saved whole model (TorchScript or torch.export .pt2); a state dict "
                      "goes with the architecture: --model torchvision:NAME|timm:NAME|file.py:FACTORY "
                      f"--weights {path}")


def model_config(source: str, **overrides: Any) -> ModelConfig:
    """The configuration ``source`` would have, read without building the network where the source allows.

    Zoo entries, ``torchvision:``, ``timm:`` and ``cnnviz train`` folders say theirs without building;
    a user file or a saved program is opened to read it.

    Example:
        >>> model_config("torchvision:vit_b_16").fixed_input
        True
    """
    kind, name = parse_source(source)
    if kind == "zoo" and entry(name).config is not None:
        config = entry(name).config()  # type: ignore[misc]
    elif kind == "torchvision" and dense_task(name):
        config = dense_config(name)
    elif kind == "torchvision":
        config = torchvision_config(name, None)
    elif kind == "timm":
        config = timm_config(name, None)
    else:
        config = load(source, device="cpu", weights=None).config  # built with random weights: only the config is read
    return config.replace(**overrides)


def _build_zoo(name: str, weights: Weights, *, num_classes: int | None, model_args: dict[str, Any]) -> ModelHandle:
    if model_args:
        raise CnnvizError(f"{name} takes no model arguments (they are for file.py:FACTORY models)")
    handle = entry(name).build(weights)
    if handle.config.source == "module":
        handle.config = dataclasses.replace(handle.config, source=f"zoo:{name}")
    if num_classes is not None and num_classes != handle.config.num_classes:
        raise CnnvizError(f"{name} has {handle.config.num_classes} classes; for another classifier use "
                          f"torchvision:NAME, timm:NAME or file.py:FACTORY with --num-classes {num_classes}")
    return handle


_BUILDERS: dict[str, Callable[..., ModelHandle]] = {
    "zoo": _build_zoo, "torchvision": build_torchvision, "timm": build_timm, "file": build_file,
    "torchscript": build_torchscript, "export": build_export, "run": build_run,
}

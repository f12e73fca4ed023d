"""Models that are programs: a user's ``file.py:FACTORY``, a TorchScript file, a ``torch.export`` ``.pt2``; their
configuration from ``CNNVIZ_CONFIG`` or the archive's ``cnnviz_config.json``."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.util
import inspect
import json
import logging
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnviz.zoo.core.errors import CnnvizError, closest
from cnnviz.zoo.handle.config import ModelConfig
from cnnviz.zoo.handle.handle import ModelHandle
from cnnviz.zoo.handle.layers import guess_cam_layer
from cnnviz.zoo.handle.weights import load_weights
from cnnviz.zoo.sources.building import Weights, call_factory, sized_config

CONFIG_FILE = "cnnviz_config.json"


@contextlib.contextmanager
def quiet(logger: str) -> Iterator[None]:
    """Only errors of ``logger`` reach the terminal inside the block: ours is the one line the user reads."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


# --- a user's Python file ------------------------------------------------------------------------------------

def build_file(source: str, weights: Weights, *, num_classes: int | None, model_args: dict[str, Any]
                ) -> ModelHandle:
    file_part, _, factory_name = source.rpartition(":")
    path = Path(file_part)
    if not path.is_file():
        raise CnnvizError(f"no Python file at {path}: give file.py:FACTORY with an existing file")
    module_file = _import_file(path)
    factory = getattr(module_file, factory_name, None)
    if factory is None or not callable(factory):
        candidates = [n for n, v in vars(module_file).items() if callable(v) and not n.startswith("_")]
        raise CnnvizError(f"{path} has no function or class {factory_name!r}{closest(factory_name, candidates)}")
    args = dict(model_args)
    if num_classes is not None and "num_classes" in _parameters(factory):
        args.setdefault("num_classes", num_classes)
    built = call_factory(factory, args, source)
    file_config = getattr(module_file, "CNNVIZ_CONFIG", None) or {}
    if isinstance(built, ModelHandle):
        handle = built
    elif isinstance(built, nn.Module):
        handle = ModelHandle(built, name=factory_name, config=config_from(file_config, built, source))
    else:
        raise CnnvizError(f"{source} returned a {type(built).__name__}, not a torch.nn.Module")
    if weights not in (None, "pretrained"):
        load_weights(handle.model, weights, what=source)
    return handle


def _import_file(path: Path) -> Any:
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    module_name = f"cnnviz_user_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise CnnvizError(f"cannot import {path}: is it a Python file?")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)  # the user's file may import its neighbours
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's code may raise anything
        raise CnnvizError(f"importing {path} failed: {type(exc).__name__}: {exc}") from None
    finally:
        sys.path.remove(folder)
    sys.modules[module_name] = module
    return module


def _parameters(fn: Callable[..., Any]) -> set[str]:
    try:
        return set(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return set()


def config_from(data: Mapping[str, Any], module: nn.Module, source: str) -> ModelConfig:
    if not isinstance(data, Mapping):
        raise CnnvizError(f"the CNNVIZ_CONFIG of {source} must be a dict of ModelConfig fields")
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = set(data) - known
    if unknown:
        raise CnnvizError(f"unknown field(s) {', '.join(sorted(unknown))} in the configuration of {source}; "
                          f"known: {', '.join(sorted(known))}")
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    if "mean" not in fields:
        channels = next((m.in_channels for m in module.modules() if isinstance(m, nn.Conv2d)), 3)
        fields["mean"] = (0.0,) * channels
        fields.setdefault("std", (1.0,) * channels)
    if "default_layer" not in fields:
        fields["default_layer"] = guess_cam_layer(module)
    fields["source"] = source
    config = ModelConfig(**fields)
    return config if config.classes is not None else sized_config(config, module)


# --- saved programs ------------------------------------------------------------------------------------------

def build_torchscript(source: str, weights: Weights, *, num_classes: int | None, model_args: dict[str, Any]
                       ) -> ModelHandle:
    _no_weights(source, weights)
    extra = {CONFIG_FILE: ""}
    try:
        with warnings.catch_warnings():  # torch 2.14 calls TorchScript deprecated; a user's file still loads
            warnings.filterwarnings("ignore", message=".*torch.jit.load. is deprecated", category=FutureWarning)
            module = torch.jit.load(source, map_location="cpu", _extra_files=extra)
    except Exception as exc:  # torch raises many types for a bad archive
        raise CnnvizError(f"cannot load the TorchScript file {source}: {str(exc).strip()[:200]}") from None
    data = {**_extra_config(extra[CONFIG_FILE], source), "default_layer": None, "hookable": False}
    config = config_from(data, module, source)
    return ModelHandle(module.eval(), name=Path(source).stem, config=config)


def build_export(source: str, weights: Weights, *, num_classes: int | None, model_args: dict[str, Any]
                  ) -> ModelHandle:
    _no_weights(source, weights)
    extra = {CONFIG_FILE: ""}
    try:
        with quiet("torch.export"):  # on a bad archive torch logs a traceback before it raises or gives up
            program = torch.export.load(source, extra_files=extra)
    except Exception as exc:  # torch raises many types for a bad archive
        why = ("torch could not deserialize it (not an archive torch.export.save wrote, or a damaged one)"
               if "deserializ" in str(exc) else str(exc).strip()[:200])
        raise CnnvizError(f"cannot load the exported program {source}: {why}") from None
    example = [node.meta.get("val") for node in program.graph.nodes if node.op == "placeholder"
               and node.name in program.graph_signature.user_inputs]
    if len(example) != 1 or example[0] is None or example[0].dim() != 4:
        raise CnnvizError(f"{source} must take one (B, C, H, W) image batch")
    shape = example[0].shape
    if not isinstance(shape[0], torch.SymInt):
        raise CnnvizError(f"{source} was exported for a fixed batch of {shape[0]}: export it with a dynamic "
                          "batch, torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim('batch')},))")
    module = torch.export.unflatten(program)  # keeps the layer hierarchy, so hooks and layer names work
    data = _extra_config(extra[CONFIG_FILE], source)
    fixed = not isinstance(shape[-1], torch.SymInt)
    if fixed:
        data.setdefault("input_size", int(shape[-1]))
        data.setdefault("resize_size", int(shape[-1]))
    data.setdefault("mean", [0.0] * int(shape[1]))
    data.setdefault("std", [1.0] * int(shape[1]))
    if fixed:
        data["fixed_input"] = True
    # train()/eval() only flip flags here: the graph keeps the mode it was exported in.
    return ModelHandle(module, name=Path(source).stem, config=config_from(data, module, source))


def _extra_config(text: str | bytes, source: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise CnnvizError(f"the {CONFIG_FILE} inside {source} is not valid JSON") from None
    if not isinstance(data, dict):
        raise CnnvizError(f"the {CONFIG_FILE} inside {source} must be a JSON object")
    return data


def _no_weights(source: str, weights: Weights) -> None:
    if weights not in (None, "pretrained"):
        raise CnnvizError(f"{source} carries its own weights: drop --weights")

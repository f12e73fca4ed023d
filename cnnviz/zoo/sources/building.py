"""What every source's builder shares: calling a factory with one kind of error, loading a checkpoint
into what it built (resizing the classifier to the checkpoint's), and a configuration agreeing with the
classifier."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
import dataclasses
from typing import Any

import torch
from torch import nn

from cnnviz.zoo.core.errors import CnnvizError
from cnnviz.zoo.handle.config import ModelConfig
from cnnviz.zoo.handle.weights import classifier, implied_num_classes, load_weights

Weights = str | Path | None


def call_factory(factory: Callable[..., Any], args: dict[str, Any], source: str) -> Any:
    try:
        return factory(**args)
    except CnnvizError:
        raise
    except TypeError as exc:
        raise CnnvizError(f"{source} does not take these arguments {sorted(args)}: {exc}") from None
    except Exception as exc:  # a model's constructor may raise anything
        raise CnnvizError(f"building {source} failed: {type(exc).__name__}: {str(exc)[:200]}") from None


def fill_state(module: nn.Module, state: dict[str, torch.Tensor] | None, num_classes: int | None, what: str,
          rebuild: Callable[[int], nn.Module]) -> nn.Module:
    """``module`` with ``state`` loaded; when no class count was asked for and only the classifier
    differs, rebuilt with the checkpoint's."""
    if state is None:
        return module
    classes = implied_num_classes(module, state) if num_classes is None else None
    head = module.state_dict()
    if classes is not None and any(k in head and head[k].shape != v.shape for k, v in state.items()):
        module = call_factory(lambda: rebuild(classes), {}, what)
    load_weights(module, state, what=what)
    return module


def sized_config(config: ModelConfig, module: nn.Module) -> ModelConfig:
    """``config`` with ``num_classes`` read off the classifier when it is not known."""
    head = classifier(module)
    if config.num_classes is not None or head is None:
        return config
    return config.replace(num_classes=head[1].out_features)


def matched_config(config: ModelConfig, module: nn.Module) -> ModelConfig:
    """``config`` agreeing with a library model's classifier (the checkpoint may have resized it)."""
    head = classifier(module)
    if head is None or config.num_classes == head[1].out_features:
        return config
    return dataclasses.replace(config, classes=None, num_classes=head[1].out_features)

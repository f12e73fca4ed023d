"""Finding the logits in what a network returns: a tensor, a dict, a tuple, a dataclass, an HF ``ModelOutput``.

Example:
    >>> import torch
    >>> out = {"aux": torch.zeros(2, 5), "logits": torch.ones(2, 3)}
    >>> select_logits(out).shape
    torch.Size([2, 3])
    >>> select_logits(out, "aux").shape
    torch.Size([2, 5])
    >>> select_logits((torch.ones(2, 4), torch.zeros(2)), 0).shape
    torch.Size([2, 4])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Union

import torch

from cnnviz.zoo.core.errors import CnnvizError

OutputSelector = Union[None, str, int, Callable[[Any], torch.Tensor]]


def select_logits(output: Any, selector: OutputSelector = None) -> torch.Tensor:
    """The logits tensor inside ``output`` (``(B, K)`` for a classifier; ``(B,)`` becomes ``(B, 1)``).

    Args:
        output: what the network returned.
        selector: None (a tensor as is; else the ``logits`` entry or attribute, else the first
            tensor), a key or attribute name, an index into a tuple or list, or a callable
            ``output -> tensor``.

    Raises:
        CnnvizError: when no tensor can be found, in one line naming what was there.
    """
    if selector is None:
        found = _default(output)
    elif callable(selector) and not isinstance(selector, (str, int)):
        found = selector(output)
    elif isinstance(selector, str):
        found = _by_name(output, selector)
    elif isinstance(selector, int) and not isinstance(selector, bool):
        found = _by_index(output, selector)
    else:
        raise CnnvizError(f"output= selects the logits by key, attribute, index or callable, got {selector!r}")
    if not isinstance(found, torch.Tensor):
        raise CnnvizError(f"the model's output selected by {selector!r} is a {type(found).__name__}, "
                          "not a logits tensor: pass output= with the key, index or attribute of the logits")
    if found.dim() == 1:
        found = found[:, None]  # one score per image: a binary classifier's single logit
    return found  # a backbone's feature maps stay as they are: layer methods need no logits


def _fields(output: Any) -> dict[str, Any] | None:
    """Named fields of a mapping (dicts, HF ModelOutput) or a dataclass, else None."""
    if isinstance(output, Mapping):
        return dict(output)
    if dataclasses.is_dataclass(output) and not isinstance(output, type):
        return {f.name: getattr(output, f.name) for f in dataclasses.fields(output)}
    return None


def _default(output: Any) -> Any:
    if isinstance(output, torch.Tensor):
        return output
    fields = _fields(output)
    if fields is not None:
        if isinstance(fields.get("logits"), torch.Tensor):
            return fields["logits"]
        values = list(fields.values())
    elif isinstance(output, (tuple, list)):
        values = list(output)
    elif isinstance(getattr(output, "logits", None), torch.Tensor):
        return output.logits
    else:
        raise CnnvizError(f"the model returns a {type(output).__name__}, not a tensor: pass output= "
                          "(a key, attribute, index or callable) to say where its logits are")
    tensors = [v for v in values if isinstance(v, torch.Tensor)]
    if not tensors:
        raise CnnvizError(f"the model returns a {type(output).__name__} with no tensor in it: "
                          "pass output= to say where its logits are")
    return tensors[0]


def _by_name(output: Any, name: str) -> Any:
    if isinstance(output, torch.Tensor):
        raise CnnvizError(f"the model returns a plain tensor {tuple(output.shape)}, so there is no {name!r} to pick: "
                          "drop --output (output=), which is for models that return a dict, tuple or dataclass")
    fields = _fields(output)
    if fields is not None and name in fields:
        return fields[name]
    if fields is None and hasattr(output, name):
        return getattr(output, name)
    have = sorted(fields) if fields is not None else [a for a in dir(output) if not a.startswith("_")]
    raise CnnvizError(f"the model's output has no {name!r}; it has: {', '.join(map(str, have[:12]))}")


def _by_index(output: Any, index: int) -> Any:
    if isinstance(output, torch.Tensor):
        raise CnnvizError(f"the model returns a plain tensor {tuple(output.shape)}, so there is no output {index} to "
                          "pick: drop --output (output=), which is for models that return a dict, tuple or dataclass")
    if isinstance(output, (tuple, list)):
        if not -len(output) <= index < len(output):
            raise CnnvizError(f"output={index} is out of range: the model returns {len(output)} values")
        return output[index]
    fields = _fields(output)
    if fields is not None and -len(fields) <= index < len(fields):
        return list(fields.values())[index]
    raise CnnvizError(f"output={index} selects by position, but the model returns a {type(output).__name__}")

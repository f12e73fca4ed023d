"""Reading checkpoints and loading them into a network: one place, one kind of error.

Every checkpoint is read with ``torch.load(weights_only=True)`` (or safetensors), so a
file can hold no code. Whatever goes wrong — no file, an empty or corrupt one, a
container that is not a state dict, keys that are not names, a shape that does not
fit — becomes one :class:`~zoo.core.CnnvizError` line that names the file and says
what to do.

Example:
    >>> import tempfile, torch
    >>> from torch import nn
    >>> path = tempfile.mkdtemp() + "/w.pt"
    >>> torch.save({"state_dict": nn.Linear(3, 2).state_dict()}, path)
    >>> sorted(read_checkpoint(path))
    ['bias', 'weight']
    >>> load_weights(nn.Linear(3, 5), path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cnnviz.CnnvizError: ...w.pt does not fit Linear: weight is (2, 3) in the file but (5, 3) in the model...
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnviz.zoo.core.errors import CnnvizError

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"  # the weights and logs that ship in the zoo

# Containers that training scripts wrap a state dict in (Lightning, timm's train.py, ours, plain dicts).
CONTAINER_KEYS = ("state_dict", "model_state", "model_state_dict", "model", "state_dict_ema", "net")


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in ``path`` (``.pt``/``.pth``/``.bin`` via ``weights_only=True``, or ``.safetensors``).

    Common containers are unwrapped (``{"state_dict": ...}``, ``{"model": ...}``) and a
    ``module.`` prefix left by ``DataParallel`` is dropped.
    """
    path = Path(path)
    if not path.is_file():
        raise CnnvizError(f"no weights file at {path}: check the path")
    if path.stat().st_size == 0:
        raise CnnvizError(f"the weights file {path} is empty: it was not saved completely")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch and safetensors raise many types for a bad file
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CnnvizError(f"cannot read weights from {path}: {reason[:200]} "
                          "(cnnviz reads state dicts only, with torch.load(weights_only=True))") from None
    for key in CONTAINER_KEYS:
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
            break
    return _checked_state(state, path)


def _checked_state(state: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(state, nn.Module):
        raise CnnvizError(f"{path} holds a whole model, not a state dict: pass it as --model {path}")
    if not isinstance(state, Mapping):
        raise CnnvizError(f"{path} holds a {type(state).__name__}, not a state dict of named tensors")
    bad_keys = [k for k in state if not isinstance(k, str)]
    if bad_keys:
        raise CnnvizError(f"{path} has keys that are not layer names (e.g. {bad_keys[0]!r}): "
                          "it is not a state dict")
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CnnvizError(f"{path} holds no tensors: it is not a state dict")
    broken = next((k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if broken is not None:
        raise CnnvizError(f"{path} holds NaN or infinite weights (e.g. {broken!r}): the training diverged "
                          "or the file is damaged; use an earlier checkpoint")
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
    return tensors


def load_weights(module: nn.Module, weights: str | Path | Mapping[str, torch.Tensor], *,
                 what: str | None = None, num_classes_hint: bool = True) -> None:
    """Load a checkpoint (a path or a state dict) into ``module``, strictly, or raise one clear line.

    Args:
        module: the network to fill.
        weights: a checkpoint path or a state dict.
        what: the model's name in messages (default: its class name).
        num_classes_hint: when only the classifier's shape differs, suggest ``--num-classes``.
    """
    what = what or type(module).__name__
    source = str(weights) if isinstance(weights, (str, Path)) else "the state dict"
    state = read_checkpoint(weights) if isinstance(weights, (str, Path)) else _checked_state(weights, Path(source))
    expected = module.state_dict()
    shape_errors = [(k, tuple(v.shape), tuple(expected[k].shape)) for k, v in state.items()
                    if k in expected and v.shape != expected[k].shape]
    if shape_errors:
        key, got, want = shape_errors[0]
        hint = ""
        classes = implied_num_classes(module, state)
        if num_classes_hint and classes is not None:
            hint = f"; the file was trained for {classes} classes: pass --num-classes {classes} (num_classes={classes})"
        raise CnnvizError(f"{source} does not fit {what}: {key} is {got} in the file but {want} in the model"
                          f"{' (and ' + str(len(shape_errors) - 1) + ' more)' if len(shape_errors) > 1 else ''}{hint}")
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]!r})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]!r})")
        raise CnnvizError(f"{source} does not fit {what}: its keys differ, {' and '.join(parts)}: "
                          "was it saved from another architecture?")
    with torch.no_grad():
        module.load_state_dict(state)


def classifier(module: nn.Module) -> tuple[str, nn.Module] | None:
    """The last ``nn.Linear`` (or 1x1 conv head) of ``module`` with its dotted name: the classifier."""
    last = None
    for name, candidate in module.named_modules():
        if isinstance(candidate, nn.Linear):
            last = (name, candidate)
    return last


def implied_num_classes(module: nn.Module, state: Mapping[str, torch.Tensor]) -> int | None:
    """How many classes ``state`` was trained for, when only ``module``'s classifier disagrees with it."""
    head = classifier(module)
    if head is None:
        return None
    name, linear = head
    key = f"{name}.weight" if name else "weight"
    weight = state.get(key)
    if weight is None or weight.dim() != 2 or weight.shape[1] != linear.in_features:
        return None
    expected = module.state_dict()
    others = [k for k, v in state.items()
              if k in expected and v.shape != expected[k].shape and not k.startswith(f"{name}.")]
    return None if others else int(weight.shape[0])

"""Choosing the device: CUDA, then Apple MPS, then CPU, unless the user says."""

from __future__ import annotations

import torch

from cnnviz.zoo.core.errors import CnnvizError


def pick_device(name: str | torch.device | None = None) -> torch.device:
    """Return ``name`` as a device, or the best one available when ``None``.

    Example:
        >>> pick_device("cpu")
        device(type='cpu')
    """
    if name is None or name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise CnnvizError(f"unknown device {name!r}: use cpu, cuda, cuda:N or mps") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CnnvizError(f"device {name!r} asked for, but CUDA is not available here: use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise CnnvizError(f"device {name!r} asked for, but MPS is not available here: use --device cpu")
    return device

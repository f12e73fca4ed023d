"""Fingerprints of a model: what changes when its weights or its structure do, for caches kept per model; and
identities, hashes of a model's weights and of a data set's items, for results kept on disk (an explorer cache, an
audit's run folder) that must be reused only when the same model looked at the same data.

Example:
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())
    >>> weights, layout = weights_fingerprint(net), structure_fingerprint(net)
    >>> net[1] = torch.nn.Tanh()
    >>> weights == weights_fingerprint(net), layout == structure_fingerprint(net)
    (True, False)
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from cnnviz.zoo.handle import ModelHandle

PLAIN = (bool, int, float, str, type(None))


def weights_fingerprint(model: nn.Module) -> tuple[object, ...]:
    """What changes when ``model``'s weights or buffers do: each tensor's storage, in-place write counter, shape,
    dtype and device, and its norm (which also sees writes through ``.data``, which the counter misses).

    Example:
        >>> net = torch.nn.Linear(2, 2)
        >>> before = weights_fingerprint(net)
        >>> _ = net.weight.data.mul_(2)
        >>> before == weights_fingerprint(net)
        False
    """
    tensors = [*model.parameters(), *model.buffers()]
    floats = [t.detach() for t in tensors if t.is_floating_point()]
    norms = torch.stack([n.double().cpu() for n in torch._foreach_norm(floats)]).tolist() if floats else []
    return tuple((t.data_ptr(), t._version, tuple(t.shape), t.dtype, t.device) for t in tensors) + tuple(norms)


def weights_digest(model: nn.Module, name: str = "") -> str:
    """A hash of ``name`` and the bytes of every weight and buffer: the same across processes and restarts (what a
    file kept for a model names it by; :func:`weights_fingerprint` is the cheap check within one process).

    Example:
        >>> net = torch.nn.Linear(2, 2)
        >>> before = weights_digest(net, "net")
        >>> _ = net.weight.data.mul_(2)
        >>> before == weights_digest(net, "net"), len(before)
        (False, 24)
    """
    digest = hashlib.sha256(name.encode())
    for key, tensor in model.state_dict().items():
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:24]


def structure_fingerprint(model: nn.Module) -> tuple[object, ...]:
    """What changes when ``model``'s structure does: which module sits at each name, its type, its train/eval
    mode, and its own settings (plain values by value, anything else an instance holds, such as a replaced
    ``forward``, by identity).

    Example:
        >>> net = torch.nn.Conv2d(1, 1, 3)
        >>> before = structure_fingerprint(net)
        >>> net.stride = (2, 2)
        >>> before == structure_fingerprint(net)
        False
    """
    return tuple((name, id(module), type(module), module.training, _settings(module))
                 for name, module in model.named_modules(remove_duplicate=False))


def _settings(module: nn.Module) -> tuple[object, ...]:
    return tuple((key, value if _plain(value) else id(value)) for key, value in vars(module).items()
                 if not key.startswith("_") and key != "training")


def _plain(value: object) -> bool:
    return isinstance(value, PLAIN) or (isinstance(value, tuple) and all(_plain(item) for item in value))


def model_identity(handle: ModelHandle) -> str:
    """A hash of the model's name and every weight and buffer (:func:`weights_digest` of the handle)."""
    return weights_digest(handle.model, handle.name)


def data_identity(data: Any, dataset: Dataset | None = None) -> str:
    """A hash of a data set: a named one by its name, a folder by its files' names, sizes and times, a tensor or
    any other data set by its length and the bytes of its items."""
    digest = hashlib.sha256()
    if isinstance(data, (str, Path)) and not Path(data).is_dir():
        digest.update(f"name:{str(data).lower()}".encode())
    elif isinstance(data, (str, Path)):
        root = Path(data).resolve()
        digest.update(f"folder:{root}".encode())
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            stat = path.stat()
            digest.update(f"{path.relative_to(root)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    else:
        items = data if isinstance(data, torch.Tensor) else dataset if dataset is not None else data
        digest.update(f"items:{len(items)}".encode())
        for index in range(len(items)):
            item = items[index]
            item = item[0] if isinstance(item, (tuple, list)) else item
            array = item.detach().float().cpu().numpy() if isinstance(item, torch.Tensor) else np.asarray(item)
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:24]

"""Names for what a result kept on disk depends on: a model's weights and a data set's items, so a restarted
server reuses a file only when the same model looked at the same data.

Example:
    >>> import torch
    >>> data_identity(torch.zeros(2, 1, 4, 4)) == data_identity(torch.zeros(2, 1, 4, 4))
    True
    >>> data_identity(torch.zeros(2, 1, 4, 4)) == data_identity(torch.ones(2, 1, 4, 4))
    False
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from cnnviz.interpret.core import weights_digest
from cnnviz.zoo.handle import ModelHandle


def model_identity(handle: ModelHandle) -> str:
    """A hash of the model's name and every weight and buffer."""
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


def result_key(*parts: Any) -> str:
    """A short hash naming a result by everything that determines it."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]

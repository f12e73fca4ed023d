"""The one JSON writer: every command and the gallery write their data through :func:`write_json`.

Strict JSON (no ``NaN``: a value that is not finite becomes ``null``, and the
data should say why next to it), UTF-8, indented, with numpy and torch
scalars and arrays, paths and dataclasses converted, written atomically (the
file appears complete or not at all).

Example:
    >>> import tempfile, pathlib, json
    >>> path = write_json(pathlib.Path(tempfile.mkdtemp()) / "scores.json", {"auc": float("nan"), "n": 2})
    >>> json.loads(path.read_text())
    {'auc': None, 'n': 2}
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnviz.zoo.core.files import atomic_write


def plain(value: Any) -> Any:
    """``value`` as plain JSON data: containers walked, non-finite floats as None, arrays as lists."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (np.generic, np.ndarray, torch.Tensor)):
        return plain(value.tolist())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain(dataclasses.asdict(value))
    return str(value)  # paths, devices, dtypes: their usual spelling


def dumps(data: Any) -> str:
    """``data`` as the JSON text :func:`write_json` writes (one-space indent, a final newline)."""
    return json.dumps(plain(data), indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def write_json(path: str | Path, data: Any) -> Path:
    """``data`` as JSON at ``path``, atomically; returns the path."""
    text = dumps(data)
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))

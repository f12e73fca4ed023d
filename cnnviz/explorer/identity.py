"""Names for what a result kept on disk depends on: a model's weights and a data set's items, so a restarted
server reuses a file only when the same model looked at the same data. They live in
:mod:`interpret.core.fingerprint` (an audit's run folder checks them too); re-exported here.

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
from typing import Any

from cnnviz.interpret.core import data_identity, model_identity

__all__ = ["data_identity", "model_identity", "result_key"]


def result_key(*parts: Any) -> str:
    """A short hash naming a result by everything that determines it."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]

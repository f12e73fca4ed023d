"""Training checkpoints: written atomically (a crash, even ``kill -9``, leaves the old file or the new one),
read back with ``weights_only=True``.

Example:
    >>> import tempfile
    >>> path = save_atomic({"format": CHECKPOINT_FORMAT, "epoch": 3}, tempfile.mkdtemp() + "/run-checkpoint.pt")
    >>> load_checkpoint(path)["epoch"]
    3
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cnnviz.zoo.core.errors import CnnvizError
from cnnviz.zoo.core.files import atomic_write

CHECKPOINT_FORMAT = 1


def save_atomic(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temporary file beside ``path``, flushed to disk, then renamed over it.

    A crash (even ``kill -9``) leaves either the old file or the new one,
    never half a file.
    """
    return atomic_write(path, lambda handle: torch.save(obj, handle))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A training checkpoint written by :func:`train` (read with ``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise CnnvizError(f"no checkpoint at {path}: check the path (cnnviz train --out DIR writes one per epoch)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise CnnvizError(f"cannot read checkpoint {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CnnvizError(f"{path} is not a cnnviz training checkpoint: give the file written by cnnviz train")
    return state


def remove_stale_temporaries(checkpoint: Path) -> None:
    # A run killed during save_atomic leaves its temporary file behind; it is never read.
    for stale in checkpoint.parent.glob(f".{checkpoint.name}.*.tmp"):
        stale.unlink(missing_ok=True)

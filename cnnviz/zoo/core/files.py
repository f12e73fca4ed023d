"""Writing files atomically: a file appears complete or not at all.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = atomic_write(Path(tempfile.mkdtemp()) / "note.txt", lambda f: f.write(b"done"))
    >>> path.read_text()
    'done'
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """Create ``path`` by calling ``write(file)`` on a temporary file beside it, then renaming.

    The file appears complete or not at all, and an old file at ``path``
    survives a failed write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())  # on disk before the rename: a crash leaves old or new, never half
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes files private; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path

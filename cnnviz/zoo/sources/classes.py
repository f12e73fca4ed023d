"""Class names from a file (``--classes``, ``zoo.load(classes=...)``)."""

from __future__ import annotations

import json
from pathlib import Path

from cnnviz.zoo.core.errors import CnnvizError


def read_classes(path: str | Path) -> list[str]:
    """Class names from a file: a JSON list (or ``{"classes": [...]}``), or one name a line.

    Example:
        >>> import tempfile
        >>> f = tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False)
        >>> _ = f.write("cat\\ndog\\n"); f.close()
        >>> read_classes(f.name)
        ['cat', 'dog']
    """
    path = Path(path)
    if not path.is_file():
        raise CnnvizError(f"no classes file at {path}: give a text file with one class name a line, or a JSON list")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CnnvizError(f"cannot read the classes file {path}: {exc}") from None
    stripped = text.strip()
    if stripped.startswith(("[", "{")):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise CnnvizError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if isinstance(data, dict):
            data = data.get("classes")
        if not isinstance(data, list) or not all(isinstance(c, str) for c in data):
            raise CnnvizError(f"{path} must hold a JSON list of class names")
        names_list = [c.strip() for c in data]
    else:
        names_list = [line.strip() for line in text.splitlines() if line.strip()]
    if not names_list:
        raise CnnvizError(f"the classes file {path} is empty: one class name a line")
    return names_list

"""The output folder: every file a command writes is named through it, so none lands outside it.

``out / name`` on an :class:`OutputFolder` refuses a name that holds a path (``../x``, ``/etc/x``,
``a/b``) and makes every other name safe as a file name with :func:`zoo.safe_name`, the one rule: control
characters, quotes, spaces and shell-special characters become ``_``, a leading dot (a hidden file) or dash
(an option to a shell) is dropped, and the name is kept under 200 characters. The writers it is used with
(``zoo.save_image``, ``zoo.atomic_write``, ``zoo.jsonfile.write_json``) write atomically.

Example:
    >>> import tempfile
    >>> out = OutputFolder(tempfile.mkdtemp())
    >>> (out / 'chelsea "cat"\\n.png').name
    'chelsea_cat_.png'
    >>> out / "../../escape.png"  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cnnviz.CnnvizError: '../../escape.png' is not a file name: names written into ... cannot hold a path (give a plain name such as 'result')
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cnnviz.zoo.core import CnnvizError
from cnnviz.zoo import safe_name  # noqa: F401  (the one name cleaner, re-exported for the commands)


class OutputFolder(type(Path())):  # type: ignore[misc]  # a concrete Path class: PosixPath or WindowsPath
    """A folder whose children are named safely: ``folder / name`` never leaves it."""

    def __truediv__(self, name: Any) -> OutputFolder:
        text = str(name)
        separators = {"/", os.sep, os.altsep or "/"}
        if not text or text in (".", "..") or any(s in text for s in separators) or "\x00" in text:
            raise CnnvizError(f"{text!r} is not a file name: names written into {self} cannot hold a path "
                              "(give a plain name such as 'result')")
        return super().__truediv__(safe_name(text))  # type: ignore[no-any-return]

"""The one rule that makes a text safe as a file name: every writer in cnnviz (the CLI's output folder, the
explorer's downloads, a feature map's file) names files through :func:`safe_name`.

Control characters, quotes, spaces, path separators and shell-special characters become ``_`` (a run of them
one ``_``), a leading dot (a hidden file) or dash (an option to a shell) is dropped, and the name is kept under
200 characters, its suffix kept. The gallery's page slugs follow their own rule (lower case, a digest where a
name had to change) because they are URLs that must never collide, not file names a user reads.

Example:
    >>> safe_name('chelsea "cat"\\n.png'), safe_name("torchvision:resnet18-layer4.1"), safe_name("../x")
    ('chelsea_cat_.png', 'torchvision_resnet18-layer4.1', 'x')
"""

from __future__ import annotations

import re

MAX_NAME = 200
_UNSAFE = re.compile(r"[^\w.+=,@-]+")


def safe_name(name: str) -> str:
    """``name`` as a harmless file name (see the module docstring); never empty, and cleaning twice changes
    nothing more (``safe_name(safe_name(x)) == safe_name(x)``)."""
    cleaned = _UNSAFE.sub("_", name).lstrip("._-").rstrip("_") or "x"
    if len(cleaned) > MAX_NAME:
        stem, dot, suffix = cleaned.rpartition(".")
        keep = suffix if dot and len(suffix) <= 10 else ""
        cleaned = cleaned[:MAX_NAME - len(keep) - 1].rstrip("_") + ("." + keep if keep else "")
    return cleaned

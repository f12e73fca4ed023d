"""The explorer's templates, shared with the gallery's static export of unit pages: one autoescaping Jinja2
environment over ``explorer/templates``, so every ``{{ value }}`` is HTML-escaped wherever a page is made.

Example:
    >>> templates().from_string("{{ name }}").render(name="<b>")
    '&lt;b&gt;'
"""

from __future__ import annotations

from pathlib import Path

import jinja2

TEMPLATES = Path(__file__).parent / "templates"
STYLESHEET = Path(__file__).parent / "static" / "explorer.css"


def templates(*more: Path) -> jinja2.Environment:
    """The template environment over the explorer's templates and the folders ``more`` (the gallery's): every
    ``{{ value }}`` is HTML-escaped."""
    return jinja2.Environment(loader=jinja2.FileSystemLoader([TEMPLATES, *more]), autoescape=True)

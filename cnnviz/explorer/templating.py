"""The explorer's templates, shared with the gallery's static export of unit pages: one autoescaping Jinja2
environment over ``explorer/templates``, so every ``{{ value }}`` is HTML-escaped wherever a page is made, with
the ``readable`` filter for numbers as people write them.

Example:
    >>> templates().from_string("{{ name }}").render(name="<b>")
    '&lt;b&gt;'
    >>> templates().from_string("{{ (4 / 255) | readable }} · {{ 0.15 | readable }} · {{ 32 | readable }}").render()
    '4/255 ≈ 0.0157 · 0.15 · 32'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

TEMPLATES = Path(__file__).parent / "templates"
STYLESHEET = Path(__file__).parent / "static" / "explorer.css"


PIXEL_LEVELS = 255  # a number that is a few whole 8-bit pixel levels reads as such: 4/255
FEW_LEVELS = 32


def readable(value: Any) -> str:
    """A number as a person writes it: a few whole pixel levels (up to :data:`FEW_LEVELS`) as ``k/255 ≈ x``, else
    at most 4 significant digits; anything else as it is."""
    if isinstance(value, bool) or not isinstance(value, float):
        return "" if value is None else str(value)
    levels = value * PIXEL_LEVELS
    short = f"{value:.4g}"
    if float(short) != value and 1 <= round(levels) <= FEW_LEVELS and abs(levels - round(levels)) < 1e-9:
        return f"{round(levels)}/{PIXEL_LEVELS} ≈ {value:.3g}"
    return short


def templates(*more: Path) -> jinja2.Environment:
    """The template environment over the explorer's templates and the folders ``more`` (the gallery's): every
    ``{{ value }}`` is HTML-escaped."""
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader([TEMPLATES, *more]), autoescape=True)
    environment.filters["readable"] = readable
    return environment

"""How the explorer says no: a refusal is one line of JSON, ``{"error": "..."}``, with the status its kind of
error carries (a name in the URL that names nothing: 404; a body over its limit: 413; any other bad input:
400). Where a person asked for a page, the same line is a page (:mod:`~cnnviz.explorer.error_pages`).

Example:
    >>> status_of(NotFound("no model 'x' is served")), status_of(TooLarge("too big")), status_of(CnnvizError("no"))
    (404, 413, 400)
    >>> one_line(400, "bad\\n input").body
    b'{"error":"bad input"}'
"""

from __future__ import annotations

from cnnviz.explorer.json_response import JSONResponse
from cnnviz.zoo.core import CnnvizError


class NotFound(CnnvizError):
    """A name in the URL (or a key) that names nothing served or kept (answered with 404)."""


class TooLarge(CnnvizError):
    """An upload or request over the declared size limit (answered with 413)."""


def status_of(exc: CnnvizError) -> int:
    """The HTTP status a refusal is answered with."""
    return 404 if isinstance(exc, NotFound) else 413 if isinstance(exc, TooLarge) else 400


def one_line(status: int, message: str) -> JSONResponse:
    """``{"error": message}`` with its whitespace folded to one line."""
    return JSONResponse({"error": " ".join(message.split())}, status_code=status)

"""The one JSON response the explorer answers with: strict JSON, as every file cnnviz writes (``zoo.dumps``).

A float that is not finite becomes ``null`` (the data says why beside it, as a record's ``map.undefined`` does),
numpy and torch numbers become plain ones, so no answer can fail to encode or hold a bare ``NaN`` that
``JSON.parse`` refuses. Every route imports this class, never Starlette's (a test checks).

Example:
    >>> JSONResponse({"gini": float("nan"), "n": 2}).body
    b'{"gini":null,"n":2}'
"""

from __future__ import annotations

import json
from typing import Any

from starlette import responses

from cnnviz.zoo.core import plain


class JSONResponse(responses.JSONResponse):
    """Starlette's JSON response with non-finite floats as null (``allow_nan=False`` guards the rest)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(plain(content), ensure_ascii=False, allow_nan=False, indent=None,
                          separators=(",", ":")).encode("utf-8")

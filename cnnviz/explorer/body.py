"""Request bodies, bounded once for every route: a JSON object of fields (at most :data:`MAX_JSON_BYTES`,
nested at most :data:`MAX_DEPTH` deep), or a multipart form whose ``image`` field may be an uploaded file (at
most :data:`MAX_FORM_BYTES` in all, the file itself at most ``MAX_UPLOAD_BYTES``).

:class:`BodyLimit` wraps the app, so no route can read more than its limit; a body over it is read to its end
and dropped (up to :data:`DRAIN_BYTES`), so a client still sending reads the one-line 413 instead of a
dropped connection.

Example:
    >>> parse_json(b'{"top": 3}', what="the body")
    {'top': 3}
    >>> parse_json(b"[" * 40 + b"]" * 40, what="the body")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cnnviz.CnnvizError: the body is nested 40 deep, deeper than the 32 accepted
"""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cnnviz.explorer.errors import TooLarge
from cnnviz.explorer.images import MAX_UPLOAD_BYTES
from cnnviz.zoo.core import CnnvizError

MAX_JSON_BYTES = 2**20  # a JSON request holds names, numbers and options: far less than this
MAX_FORM_BYTES = MAX_UPLOAD_BYTES + 65536  # an uploaded image and a few short fields
MAX_DEPTH = 32  # nesting of a JSON value: requests are flat objects, options one level below
DRAIN_BYTES = 256 * 2**20  # an oversized body is read and dropped up to this much before the 413


def depth(value: Any) -> int:
    """How deep objects and lists nest in ``value`` (a scalar: 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def parse_json(raw: bytes | str, *, what: str) -> Any:
    """``raw`` as JSON, nested at most :data:`MAX_DEPTH` deep; else one line saying what was wrong."""
    try:
        found = json.loads(raw or b"null")
    except RecursionError:
        raise CnnvizError(f"{what} is nested deeper than the {MAX_DEPTH} accepted") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise CnnvizError(f"{what} is not valid JSON ({str(exc).splitlines()[0]})") from None
    if (nested := depth(found)) > MAX_DEPTH:
        raise CnnvizError(f"{what} is nested {nested} deep, deeper than the {MAX_DEPTH} accepted")
    return found


def is_form(headers: Headers) -> bool:
    return headers.get("content-type", "").startswith("multipart/form-data")


async def fields(request: Request, upload: Any) -> tuple[dict[str, Any], bool]:
    """The body's fields and whether they are text (a form) rather than JSON values; a file in the form is
    handed to ``upload(content, filename)``, whose answer (the name it is kept under) becomes the field."""
    if is_form(request.headers):
        found: dict[str, Any] = {}
        async with request.form(max_files=1, max_fields=16, max_part_size=MAX_UPLOAD_BYTES + 1) as form:
            for name, value in form.multi_items():
                if hasattr(value, "read"):  # a file: decoded off the event loop (a large image takes a second)
                    value = await run_in_threadpool(upload, await value.read(), value.filename or "")
                found[name] = value
        return found, True
    found = parse_json(await request.body(), what="the body")
    if not isinstance(found, dict):
        raise CnnvizError(f"the body must be a JSON object of fields, got {type(found).__name__}")
    return found, False


class BodyLimit:
    """ASGI middleware: a route reads at most its body limit (a form's or JSON's), whatever it does."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        limit = MAX_FORM_BYTES if is_form(headers) else MAX_JSON_BYTES
        declared = headers.get("content-length", "")
        read = 0

        async def bounded() -> Message:
            nonlocal read
            if declared.isdigit() and int(declared) > limit:
                await drain(receive, int(declared))
                raise too_large(int(declared), limit)
            message = await receive()
            read += len(message.get("body", b""))
            if read > limit:
                if message.get("more_body"):
                    read += await drain(receive, DRAIN_BYTES)
                raise too_large(read, limit)
            return message

        await self.app(scope, bounded, send)


def too_large(size: int, limit: int) -> TooLarge:
    return TooLarge(f"the request is {size:,} bytes{' or more' if size >= DRAIN_BYTES else ''}, more than the "
                    f"{limit:,} accepted")


async def drain(receive: Receive, size: int) -> int:
    """Read and drop what is left of a body (when it is at most :data:`DRAIN_BYTES`); the bytes dropped."""
    dropped = 0
    while size <= DRAIN_BYTES and dropped <= DRAIN_BYTES:
        message = await receive()
        dropped += len(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body"):
            break
    return dropped

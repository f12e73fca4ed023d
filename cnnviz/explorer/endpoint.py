"""Routes from handlers: a handler is ``async def name(explorer, ask: SomeAsk) -> Response``, and
:func:`route` reads its typed request (:mod:`~cnnviz.explorer.requests`) from the path, the query (GET) or the
body (POST) before calling it. A handler never sees the raw request, so every field it reads is one its class
declares, which the OpenAPI document is made from (:mod:`~cnnviz.explorer.openapi`).

Example:
    >>> from starlette.responses import JSONResponse
    >>> from cnnviz.explorer.requests import Served
    >>> async def layers(explorer, ask: Served) -> JSONResponse:
    ...     '''The layer table.'''
    >>> made = route("GET", "/api/models/{model}/layers", layers)
    >>> made.endpoint.ask.__name__, made.endpoint.handler is layers
    ('Served', True)
"""

from __future__ import annotations

import typing
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cnnviz.explorer import body
from cnnviz.explorer.state import Explorer
from cnnviz.explorer.typed import Ask

Handler = Callable[[Explorer, Any], Awaitable[Response]]


def ask_of(handler: Handler) -> type[Ask]:
    """The typed request a handler takes (its ``ask`` parameter's class)."""
    return typing.get_type_hints(handler)["ask"]


async def read(request: Request, ask: type[Ask], explorer: Explorer) -> Ask:
    """The typed request: path fields from the path, the others from the query (GET, HEAD) or the body."""
    path = dict(request.path_params)
    given: dict[str, Any] = {}
    text = True
    if request.method in ("GET", "HEAD"):
        given = dict(request.query_params)
    elif set(ask.params()) - set(path):
        given, text = await body.fields(request, explorer.upload)
    return ask.decode({**given, **path}, text=set(path) | (set(given) if text else set()))


def route(method: str, path: str, handler: Handler) -> Route:
    """The route calling ``handler`` with the explorer and its typed request."""
    ask = ask_of(handler)

    async def endpoint(request: Request) -> Response:
        explorer: Explorer = request.app.state.explorer
        return await handler(explorer, await read(request, ask, explorer))

    endpoint.ask, endpoint.handler = ask, handler  # type: ignore[attr-defined]  # read by the OpenAPI document
    endpoint.__name__ = handler.__name__
    return Route(path, endpoint, methods=[method])

"""The explorer's ASGI app: the routes (:mod:`~cnnviz.explorer.routes`), the static files, one error shape, the
body limits and the token check. A refusal is one line of JSON, or a page with the way back where a page was
asked for (:func:`~cnnviz.explorer.error_pages.refusal`).

Example:
    >>> from starlette.testclient import TestClient
    >>> with TestClient(create_app(["fashion_cnn"], device="cpu")) as client:
    ...     client.get("/api/health").json()["models"]
    ['fashion_cnn']
"""

from __future__ import annotations

import contextlib
import hmac
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from cnnviz import zoo
from cnnviz.explorer.body import BodyLimit
from cnnviz.explorer.error_pages import refusal
from cnnviz.explorer.errors import one_line, status_of
from cnnviz.explorer.routes import ROUTES
from cnnviz.explorer.state import Explorer
from cnnviz.zoo.core import CnnvizError
from cnnviz.zoo.handle import ModelHandle

HERE = Path(__file__).parent


async def _bad_input(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CnnvizError)
    return refusal(request, status_of(exc), str(exc))


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return refusal(request, exc.status_code, str(exc.detail))


async def _failure(request: Request, exc: Exception) -> Response:
    return refusal(request, 500, f"internal error ({type(exc).__name__}): the server keeps serving; please report it")


class TokenCheck:
    """Every request must carry the token: ``Authorization: Bearer TOKEN``, ``?token=TOKEN`` or the cookie
    that a page opened with ``?token=`` sets."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        header = request.headers.get("authorization", "")
        given = header[7:] if header.startswith("Bearer ") else request.query_params.get("token") \
            or request.cookies.get("cnnviz_token", "")
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            await one_line(401, "this server needs its token: send Authorization: Bearer TOKEN "
                              "(or open a page with ?token=TOKEN)")(scope, receive, send)
            return
        if request.query_params.get("token"):
            async def send_with_cookie(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    cookie = f"cnnviz_token={self.token}; HttpOnly; SameSite=Strict; Path=/"
                    message["headers"] = [*message.get("headers", []), (b"set-cookie", cookie.encode())]
                await send(message)
            await self.app(scope, receive, send_with_cookie)
            return
        await self.app(scope, receive, send)


def _handles(models: Sequence[str | ModelHandle] | dict[str, ModelHandle], device: str | None) -> dict[str, ModelHandle]:
    if isinstance(models, dict):
        return dict(models)
    handles = [m if isinstance(m, ModelHandle) else zoo.load(m, device=device) for m in models]
    return {h.name: h for h in handles}


def _lifespan(explorer: Explorer) -> Any:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        explorer.close()
        print("cnnviz serve: stopped; the queued jobs finished or were cancelled", file=sys.stderr, flush=True)

    return lifespan


def create_app(models: Sequence[str | ModelHandle] | dict[str, ModelHandle], data: Any = None, *,
               cache_dir: str | Path | None = None, token: str | None = None, device: str | None = None,
               cache_bytes: int = 256 * 2**20) -> Starlette:
    """The explorer over ``models`` (handles or ``zoo.load`` sources, the first the default).

    Args:
        models: what to serve; a request can only choose among these.
        data: a folder, ``"fashion-mnist"`` or a dataset, for items and unit pages (optional).
        cache_dir: the only folder the server writes in (default: a temporary one, removed at shutdown).
        token: when given, every request must carry it.
        device: where models given as sources are loaded (default: CUDA when present).
        cache_bytes: the size limit of the in-memory result cache.
    """
    from cnnviz.interpret import open_dataset

    explorer = Explorer(_handles(models, device), open_dataset(data) if data is not None else None,
                        data_source=data, cache_dir=cache_dir, cache_bytes=cache_bytes)
    routes = [*ROUTES, Mount("/static", StaticFiles(directory=HERE / "static"), name="static")]
    app = Starlette(routes=routes, exception_handlers={CnnvizError: _bad_input, HTTPException: _http,
                                                       Exception: _failure},
                    lifespan=_lifespan(explorer))
    app.state.explorer = explorer
    app.add_middleware(BodyLimit)
    if token:
        app.add_middleware(TokenCheck, token=token)  # added last, so checked first
    return app

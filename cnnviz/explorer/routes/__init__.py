"""Every route of the explorer, by resource: each module's handlers decode (a typed request), compute
(:mod:`~cnnviz.explorer.compute`) and respond. ``/api/openapi.json`` is made from this list.

Example:
    >>> sorted({r.path for r in ROUTES})[:3]
    ['/', '/api/atlas', '/api/audit']
"""

from __future__ import annotations

from cnnviz.explorer.endpoint import route
from cnnviz.explorer.json_response import JSONResponse
from cnnviz.explorer.openapi import document
from cnnviz.explorer.routes import audit, explain, jobs, models, pages, predict, results, units, uploads
from cnnviz.explorer.state import Explorer
from cnnviz.explorer.typed import Ask


async def openapi(explorer: Explorer, ask: Ask) -> JSONResponse:
    """This document: the API and the pages, made from the routes and their typed requests."""
    return JSONResponse(document(ROUTES))


API = [route("GET", "/api/openapi.json", openapi), *models.ROUTES, *predict.ROUTES, *explain.ROUTES,
       *results.ROUTES, *units.ROUTES, *jobs.ROUTES, *uploads.ROUTES, *audit.API]
ROUTES = [*API, *pages.ROUTES, *audit.ROUTES]

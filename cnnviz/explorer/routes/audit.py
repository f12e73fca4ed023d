"""The data view: the audit of a served model over ``--data`` (:func:`interpret.audit`), run as a job in rounds and
kept in the cache folder; its pages and their JSON.

- ``/m/MODEL/data``: the confusion matrix (a cell opens its images), calibration, the flags, the classes, the
  most confident mistakes and the least confident right predictions; before the audit, its start with progress
  and cancel;
- ``/m/MODEL/data/items?label=&predicted=&correct=&low=&high=&cluster=&flag=&order=``: the images a selection
  picks, each with its map, each linking to its image page;
- ``/m/MODEL/data/class?name=NAME``: a class's clusters, embedding, concepts and flags.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlencode

from starlette.responses import HTMLResponse, Response

from cnnviz.explorer import audit_view
from cnnviz.explorer.audit_job import KeptAudit, figure_png, figure_row
from cnnviz.explorer.audit_view import SHOWN, Row, Selection
from cnnviz.explorer.endpoint import route
from cnnviz.explorer.errors import NotFound
from cnnviz.explorer.json_response import JSONResponse
from cnnviz.explorer.requests import FIRST_IMAGE, AuditClass, AuditFigure, AuditItems, Audited, AuditStart
from cnnviz.explorer.routes.pages import render
from cnnviz.explorer.state import Explorer, result_key
from cnnviz.zoo.core import CnnvizError
from cnnviz.zoo.handle import ModelHandle


class ServedLinks:
    """The data view's links (:class:`explorer.audit_view.Links`): its pages, with the method and layer asked for,
    and each item's image page (``data:ROW``: the audit's rows are the served data's items)."""

    def __init__(self, model: str, ask: Audited, report: dict[str, Any] | None = None) -> None:
        self.base = f"/m/{quote(model, safe='')}"
        self.keep = {name: value for name, value in (("method", ask.method), ("layer", ask.layer)) if value}
        self.report = report

    def _query(self, given: dict[str, Any]) -> str:
        text = urlencode({**self.keep, **{k: str(v).lower() if isinstance(v, bool) else v for k, v in given.items()}})
        return f"?{text}" if text else ""

    def overview(self) -> str:
        return f"{self.base}/data{self._query({})}"

    def items(self, selection: Selection, *, api: bool = False, **more: Any) -> str:
        """The page (or, with ``api``, the JSON) of the items ``selection`` picks; ``more``: order and offset."""
        where = f"/api/models/{self.base.removeprefix('/m/')}" if api else self.base
        return f"{where}/data/items{self._query({**selection.given(), **more})}"

    def klass(self, name: str) -> str:
        return f"{self.base}/data/class{self._query({'name': name})}"

    def item(self, row: Row) -> str:
        return f"{self.base}/image/data:{row.row}"

    def explain(self, row: Row) -> str | None:
        """The explain page of an item with the audit's method, layer and target (its true class): its map at full
        size."""
        if self.report is None:
            return None
        query = {"target": row.label, **({"layer": self.report["layer"]} if self.report["layer"] else {})}
        return f"{self.base}/image/data:{row.row}/explain/{quote(self.report['method'], safe='')}?{urlencode(query)}"

    def figure(self, name: str) -> str:
        model = self.base.removeprefix("/m/")
        return f"/api/models/{model}/data/figures/{name}.png{self._query({})}"


async def kept_audit(explorer: Explorer, ask: Audited) -> tuple[ModelHandle, KeptAudit]:
    """The served model and its kept audit; refused (404) with the way to start it when there is none yet."""
    handle = explorer.model(ask.model)
    layer = explorer.layer(handle, ask.layer)
    run = await explorer.audit(handle, ask.method, layer)
    if run is None:
        raise NotFound(f"{handle.name} has not been audited over the data yet: POST /api/audit with its model (or open "
                       f"/m/{handle.name}/data), then wait for the job")
    return handle, run


async def audit_page(explorer: Explorer, ask: Audited) -> HTMLResponse:
    """The model over its data: confusion matrix, calibration, flags, classes, mistakes; or the audit's start."""
    handle = explorer.model(ask.model)
    layer = explorer.layer(handle, ask.layer)
    links = ServedLinks(handle.name, ask)
    if explorer.data is None:
        return render(explorer, "audit.html", model=handle.name, image=FIRST_IMAGE, links=links, report=None,
                      job={"served": False})
    run = await explorer.audit(handle, ask.method, layer)
    if run is None:
        running = explorer.audit_jobs.get(explorer.audit_path(handle, ask.method, layer))
        body = json.dumps({"model": handle.name, "method": ask.method, "layer": layer, "watch": True})
        job = {"served": True, "id": running.id if running is not None and not running.over else "",
               "items": len(explorer.data), "body": body}
        return render(explorer, "audit.html", model=handle.name, image=FIRST_IMAGE, links=links, report=None, job=job)
    return render(explorer, "audit.html", model=handle.name, image=FIRST_IMAGE, job=None,
                  **audit_view.overview(run.report, run.rows, ServedLinks(handle.name, ask, run.report)))


async def class_page(explorer: Explorer, ask: AuditClass) -> HTMLResponse:
    """A class's strategies (clusters with their mean maps and prototypes), embedding, concepts and flags."""
    handle, run = await kept_audit(explorer, ask)
    return render(explorer, "audit_class.html", model=handle.name, image=FIRST_IMAGE,
                  **audit_view.class_page(run.report, ask.name, run.rows,
                                          ServedLinks(handle.name, ask, run.report)))


def listed(run: KeptAudit, ask: AuditItems, links: ServedLinks, *, api: bool = False) -> dict[str, Any]:
    """The page of items ``ask`` selects, with the links to the pages (``api``: the answers) before and after it."""
    found = audit_view.items_page(run.report, run.rows, run.audit.items, ask.selection(), links, order=ask.order,
                                  offset=ask.offset, limit=ask.limit)
    more = {"order": ask.order, "limit": ask.limit} if ask.order != "item" else {"limit": ask.limit}
    if ask.limit == SHOWN:
        more.pop("limit")
    after, before = ask.offset + ask.limit, max(0, ask.offset - ask.limit)
    return {**found,
            "next": links.items(ask.selection(), api=api, **more, offset=after) if after < found["total"] else None,
            "previous": links.items(ask.selection(), api=api, **more, offset=before) if ask.offset else None}


async def items_page(explorer: Explorer, ask: AuditItems) -> HTMLResponse:
    """The images a selection picks (a confusion cell, a class right or wrong, a confidence band, a cluster, a
    flag), each with its map and a link to its image page."""
    handle, run = await kept_audit(explorer, ask)
    return render(explorer, "audit_items.html", model=handle.name, image=FIRST_IMAGE,
                  **listed(run, ask, ServedLinks(handle.name, ask, run.report)))


def row_json(row: Row, links: ServedLinks) -> dict[str, Any]:
    return {"row": row.row, "item": row.item, "label": row.label, "predicted": row.predicted,
            "confidence": row.confidence, "correct": row.correct, "image": f"data:{row.row}",
            "page": links.item(row), "figure": links.figure(audit_view.figure_name("item", row.row))}


async def audit_json(explorer: Explorer, ask: Audited) -> JSONResponse:
    """The kept audit of the model over --data: its audit.json (404 until POST /api/audit has finished)."""
    _, run = await kept_audit(explorer, ask)
    return JSONResponse(run.report)


async def items_json(explorer: Explorer, ask: AuditItems) -> JSONResponse:
    """The audited items a selection picks, a page at a time: each item's label, prediction, confidence, its image
    name (data:ROW) and its figure (the image with its map)."""
    handle, run = await kept_audit(explorer, ask)
    links = ServedLinks(handle.name, ask)
    found = listed(run, ask, links, api=True)
    return JSONResponse({"selection": ask.selection().given(), "total": found["total"], "offset": ask.offset,
                         "items": [row_json(row, links) for row in found["shown"]], "next": found["next"]})


async def figure(explorer: Explorer, ask: AuditFigure) -> Response:
    """A figure of the data view: an item with its map (item-ROW), a cluster's mean map (mean-CLASS-CLUSTER) or a
    concept's crop (crop-CLASS-CONCEPT-RANK), by class index."""
    handle, run = await kept_audit(explorer, ask)
    try:
        kind, parts = audit_view.parse_figure(ask.name, run.report)
    except CnnvizError as exc:
        raise NotFound(str(exc)) from None
    row = figure_row(run, kind, parts)
    image = None if row is None else (await explorer.image(handle, f"data:{row}"))[0].cpu().numpy()
    drawn = await explorer.cached(result_key("audit-figure", run.path.name, ask.name),
                                  lambda: figure_png(run, kind, parts, image))
    return Response(drawn, media_type="image/png")


async def start_audit(explorer: Explorer, ask: AuditStart) -> JSONResponse:
    """Start the audit of the model over --data (202 with the job: poll /api/jobs/{job}, cancel with
    /api/jobs/{job}/cancel; 200 when it is kept). It runs in rounds after every interactive request; a page's start
    (watch) is cancelled once no page polls it, and a later start resumes where it stopped."""
    handle = explorer.model(ask.model)
    layer = explorer.layer(handle, ask.layer)
    before = explorer.audit_jobs.get(explorer.audit_path(handle, ask.method, layer))
    job = await explorer.audit_job(handle, ask.method, layer)
    if job is None:
        return JSONResponse({"kind": "audit", "state": "done", "model": handle.name, "kept": True,
                             "page": ServedLinks(handle.name, ask).overview()})
    job.asked(ask.watch, job is not before)
    return JSONResponse({**job.status(), "kept": False}, status_code=202)


ROUTES = [route("GET", "/m/{model}/data", audit_page), route("GET", "/m/{model}/data/items", items_page),
          route("GET", "/m/{model}/data/class", class_page)]
API = [route("POST", "/api/audit", start_audit), route("GET", "/api/models/{model}/data", audit_json),
       route("GET", "/api/models/{model}/data/items", items_json),
       route("GET", "/api/models/{model}/data/figures/{name}.png", figure)]

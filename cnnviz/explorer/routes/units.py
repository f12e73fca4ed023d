"""Units: one channel's activation on an image, its top patches of ``--data`` (from its layer's atlas, a job),
and the channels that carry a class's evidence."""

from __future__ import annotations

from typing import Any

from cnnviz.explorer import compute
from cnnviz.explorer.atlas_job import scan_cost
from cnnviz.explorer.endpoint import route
from cnnviz.explorer.json_response import JSONResponse
from cnnviz.explorer.requests import Channel, Evidence, Scan, SheetPart, SheetStart, Unit, chosen
from cnnviz.explorer.state import Explorer


async def unit(explorer: Explorer, ask: Unit) -> JSONResponse:
    """One channel's activation on ?image=NAME."""
    handle = explorer.model(ask.model)
    layer = explorer.layer(handle, ask.layer)
    key, values = await compute.unit_activation(explorer, handle, ask.image, layer, ask.channel)
    return JSONResponse({"model": handle.name, "layer": layer, "channel": ask.channel, "image": ask.image,
                         "activation": {"mean": float(values.mean()), "max": float(values.max()),
                                        "shape": list(values.shape)},
                         "map": f"/api/maps/{key}.png"})


async def patches(explorer: Explorer, ask: Channel) -> JSONResponse:
    """A unit's top-activating patches of --data (after /api/atlas)."""
    handle = explorer.model(ask.model)
    layer = explorer.layer(handle, ask.layer)
    return JSONResponse({"model": handle.name, "layer": layer, "channel": ask.channel,
                         "patches": await compute.unit_patches(explorer, handle, layer, ask.channel)})


async def atlas(explorer: Explorer, ask: Scan) -> JSONResponse:
    """Start the atlas of a layer over --data (202 with the job; 200 when kept). Started with ``watch`` (as the
    unit page does), it is cancelled once no page has polled it for a while; a start without it keeps a running
    scan going to its end."""
    handle = explorer.model(ask.model)
    layer = explorer.layer(handle, ask.layer) or handle.default_layer
    before = explorer.atlas_jobs.get(explorer.atlas_path(handle, layer))
    return started("atlas", handle, layer, before, explorer.atlas_job(handle, layer), ask.watch)


async def sheet_start(explorer: Explorer, ask: SheetStart) -> JSONResponse:
    """Start the sheet of a layer (202 with the job; 200 when kept): every channel's feature visualization, then,
    with --data, the atlas scan with each channel's statistics. ``watch`` as for /api/atlas; ``channels`` are
    pictured first."""
    handle = explorer.model(ask.model)
    layer = explorer.layer(handle, ask.layer) or handle.default_layer
    before = explorer.sheet_jobs.get(explorer.sheet_path(handle, layer))
    return started("sheet", handle, layer, before, explorer.sheet_job(handle, layer, chosen(ask.channels)), ask.watch)


def started(kind: str, handle: Any, layer: str, before: Any, job: Any, watch: bool) -> JSONResponse:
    """The answer to a job's start: 200 when its result is kept, else 202 with the job (a page joining a job the
    API started leaves it running to its end)."""
    if job is None:
        return JSONResponse({"kind": kind, "state": "done", "model": handle.name, "layer": layer, "kept": True})
    job.asked(watch, job is not before)
    return JSONResponse({**job.status(), "kept": False}, status_code=202)


async def sheet(explorer: Explorer, ask: SheetPart) -> JSONResponse:
    """A layer's semantic dictionary as far as its sheet is made (never starting it: POST /api/sheets): per
    channel its feature visualization, top patches of --data and words (mean, sparsity, dead)."""
    handle = explorer.model(ask.model)
    layer = explorer.layer(handle, ask.layer)
    job = explorer.sheet_jobs.get(explorer.sheet_path(handle, layer))
    if job is not None and job.watched is not None:
        job.watch()  # a page polling the dictionary keeps the sheet it started alive
    return JSONResponse(await compute.dictionary(explorer, handle, layer, chosen(ask.channels)))


async def scan_offer(explorer: Explorer, handle: Any, layer: str) -> dict[str, Any]:
    """What a unit page says of its layer's atlas (never starting it): ``kept`` on disk; else the ``job`` id of a
    scan running now; else the ``cost`` of one (items x seconds per item), started only when the user asks."""
    if explorer.atlas_path(handle, layer).exists():
        return {"kept": True}
    running = explorer.atlas_jobs.get(explorer.atlas_path(handle, layer))
    if running is not None and not running.over:
        return {"kept": False, "job": running.id}
    cost = await explorer.queue(handle).run(lambda: scan_cost(handle, layer, explorer.data))
    return {"kept": False, "job": None, "cost": cost}


async def evidence(explorer: Explorer, ask: Evidence) -> JSONResponse:
    """Channels with the most activation x gradient for the class."""
    handle = explorer.model(ask.model)
    layer = explorer.layer(handle, ask.layer) or handle.default_layer
    target = explorer.target(handle, ask.target)
    rows = await compute.evidence_rows(explorer, handle, ask.image, layer, target, ask.top)
    channels = [{"channel": row["channel"], "evidence": row["evidence"], "map": f"/api/maps/{row['key']}.png",
                 "unit": f"/api/models/{handle.name}/units/{layer}/{row['channel']}?image={ask.image}"}
                for row in rows]
    return JSONResponse({"model": handle.name, "image": ask.image, "layer": layer, "target": target,
                         "channels": channels})


ROUTES = [route("GET", "/api/models/{model}/units/{layer}/{channel}", unit),
          route("GET", "/api/models/{model}/units/{layer}/{channel}/patches", patches),
          route("POST", "/api/atlas", atlas), route("POST", "/api/evidence", evidence),
          route("POST", "/api/sheets", sheet_start), route("GET", "/api/models/{model}/sheets/{layer}", sheet)]

"""Jobs: activation maximization of a unit, inversion, DeepDream and attacks, run in rounds; their state,
cost, cancel and latest picture."""

from __future__ import annotations

import numpy as np
from starlette.responses import Response

from cnnviz.explorer import drawing
from cnnviz.explorer.endpoint import route
from cnnviz.explorer.errors import NotFound
from cnnviz.explorer.jobs import Job as Running
from cnnviz.explorer.jobs import UnitJob
from cnnviz.explorer.json_response import JSONResponse
from cnnviz.explorer.optimize_jobs import OptimizeJob
from cnnviz.explorer.requests import Job, JobRef, Optimize
from cnnviz.explorer.state import Explorer


async def start_job(explorer: Explorer, ask: Job) -> JSONResponse:
    """Start activation maximization of a unit (202)."""
    handle = explorer.model(ask.model)
    layer = explorer.layer(handle, ask.layer) or handle.default_layer
    job = UnitJob(handle, layer, ask.channel, steps=ask.steps, round_steps=ask.round_steps)
    if ask.watch:
        job.watch()
    explorer.start(job, handle)
    return JSONResponse(job.status(), status_code=202)


async def start_optimization(explorer: Explorer, ask: Optimize) -> JSONResponse:
    """Start inversion (invert), DeepDream (dream) or a PGD attack (pgd) on an image (202; poll
    /api/jobs/{job}); it runs in rounds, after every interactive request, and its status tells its cost."""
    handle = explorer.model(ask.model)
    target = explorer.target(handle, ask.target)
    layer = explorer.layer(handle, ask.layer)
    batch = await explorer.image(handle, ask.image)
    job = OptimizeJob(handle, ask.method, batch, target, layer, ask.options, round_steps=ask.round_steps)
    if ask.watch:
        job.watch()
    explorer.start(job, handle)
    return JSONResponse(job.status(), status_code=202)


def job_of(explorer: Explorer, ask: JobRef) -> Running:
    job = explorer.jobs.get(ask.job)
    if job is None:
        raise NotFound(f"no job {ask.job!r}")
    return job


async def job_status(explorer: Explorer, ask: JobRef) -> JSONResponse:
    """A job's state, step and picture (a poll keeps a job a page started alive)."""
    job = job_of(explorer, ask)
    if job.watched is not None:
        job.watch()
    return JSONResponse(job.status())


async def cancel_job(explorer: Explorer, ask: JobRef) -> JSONResponse:
    """Stop a job at its next round."""
    job = job_of(explorer, ask)
    job.cancel()
    return JSONResponse(job.status())


def picture(explorer: Explorer, ask: JobRef) -> np.ndarray:
    image = job_of(explorer, ask).image
    if image is None:
        raise NotFound("the job has no picture yet")
    return image


async def job_png(explorer: Explorer, ask: JobRef) -> Response:
    """A job's latest picture."""
    return Response(drawing.image_png(picture(explorer, ask)), media_type="image/png")


async def job_npy(explorer: Explorer, ask: JobRef) -> Response:
    """A job's latest picture as float values (C, H, W), as the Python API returns them."""
    return Response(drawing.npy(picture(explorer, ask)), media_type="application/octet-stream")


ROUTES = [route("POST", "/api/jobs", start_job), route("GET", "/api/jobs/{job}", job_status),
          route("POST", "/api/jobs/{job}/cancel", cancel_job), route("GET", "/api/jobs/{job}/image.png", job_png),
          route("GET", "/api/jobs/{job}/image.npy", job_npy), route("POST", "/api/optimize", start_optimization)]

"""What a running explorer holds: its models (from the command line only), the optional data set, the
compute queues, the result cache, the running jobs and the cache folder it may write in.

Example:
    >>> from cnnviz import zoo
    >>> state = Explorer({"fashion_cnn": zoo.load("fashion_cnn", device="cpu")}, cache_dir=None)
    >>> state.model("fashion_cnn").name
    'fashion_cnn'
    >>> import asyncio
    >>> asyncio.run(state.cached("answer", lambda: 6 * 7)), asyncio.run(state.cached("answer", lambda: 0))
    (42, 42)
    >>> state.close()
"""

from __future__ import annotations

import asyncio
import inspect
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from cnnviz import interpret
from cnnviz.explorer.atlas_job import TOP, AtlasJob, load_atlas
from cnnviz.explorer.audit_job import CHUNK as AUDIT_CHUNK
from cnnviz.explorer.audit_job import AuditJob, KeptAudit, audit_kept, open_run
from cnnviz.interpret.audit import DEFAULT_METHOD, AuditRun
from cnnviz.explorer.compute_queue import ComputeQueue, Queues
from cnnviz.explorer.errors import NotFound
from cnnviz.explorer.identity import data_identity, model_identity, result_key
from cnnviz.explorer.images import (UPLOAD_PREFIX, Upload, keep_upload, kept_upload, named_image, upload_of,
                                    upload_side)
from cnnviz.explorer.result_cache import ResultCache
from cnnviz.explorer.sheet_job import (SHEETS_DIR, SheetJob, dissection_file, kept_dissection,
                                      sheet_file, sheet_key)
from cnnviz.interpret.inside import Dissection, LayerSheet, load_sheet
from cnnviz.zoo.core import CnnvizError, closest
from cnnviz.zoo.handle import ModelHandle

KEPT_JOBS = 256  # finished jobs kept for their status and picture; older finished ones are forgotten


class Explorer:
    """The served models and everything requests share.

    Args:
        models: ``{name: handle}``, in the order the command line gave them (the first is the default).
        data: the data set items and unit pages draw from, or None.
        data_source: what ``data`` was opened from (a folder, a name, a tensor), which names it in the cache.
        cache_dir: the only folder the explorer writes in (uploads are kept in it); None: a temporary one.
        cache_bytes: the result cache's size limit.
    """

    def __init__(self, models: dict[str, ModelHandle], data: Dataset | None = None, *, data_source: Any = None,
                 cache_dir: str | Path | None = None, cache_bytes: int = 256 * 2**20) -> None:
        if not models:
            raise CnnvizError("give at least one model to serve")
        self.models = dict(models)
        self.data = data
        self._data_source = data if data_source is None else data_source
        self._identities: dict[str, str] = {}
        self._temporary = tempfile.TemporaryDirectory(prefix="cnnviz-serve-") if cache_dir is None else None
        self.cache_dir = Path(self._temporary.name if self._temporary else cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.uploads = self.cache_dir / "uploads"
        self.upload_side = upload_side(self.models.values())
        for stale in [*self.uploads.glob(".*.tmp"), *(self.cache_dir / "atlas").glob(".*.tmp"),
                      *(self.cache_dir / SHEETS_DIR).glob(".*.tmp")]:
            stale.unlink(missing_ok=True)  # left by a process killed mid-write
        self.results = ResultCache(cache_bytes)
        self.queues = Queues()
        self.jobs: dict[str, Any] = {}
        self.atlas_jobs: dict[Path, AtlasJob] = {}
        self.sheet_jobs: dict[Path, SheetJob] = {}
        self.audit_jobs: dict[Path, AuditJob] = {}
        self._running: dict[str, asyncio.Future] = {}  # computations under way, by key

    @property
    def default_model(self) -> str:
        return next(iter(self.models))

    def model(self, name: str | None) -> ModelHandle:
        """The served model ``name`` (None: the first); a request can only pick among the served ones."""
        name = self.default_model if name is None else name
        if name not in self.models:
            raise NotFound(f"no model {name!r} is served{closest(str(name), self.models)}; served: "
                           f"{', '.join(self.models)}")
        return self.models[name]

    def queue(self, handle: ModelHandle) -> ComputeQueue:
        """The compute queue of the device ``handle`` runs on."""
        return self.queues[str(handle.device)]

    def method(self, name: str) -> interpret.Method:
        """A registered attribution method (``captum:Name`` built on demand)."""
        return interpret.get_method(name, "attribution")

    def layer(self, handle: ModelHandle, name: str | None) -> str | None:
        """``name`` if it is a layer of ``handle`` (None: the method's or model's default); an unknown name is
        refused with the closest ones and where the layers are listed (the layers page, the API)."""
        if name is None:
            return None
        names = [layer for layer, _ in handle.model.named_modules() if layer]
        if handle.config.hookable and name not in names:
            raise CnnvizError(f"no layer {name!r} in {handle.name}{closest(name, names)} (see the layers page "
                              f"/m/{handle.name}/layers, or GET /api/models/{handle.name}/layers)")
        handle.layer(name)
        return name

    def target(self, handle: ModelHandle, target: int | str | None) -> int | None:
        """A class index of ``handle`` from an index or (part of) a class name; None: the predicted class."""
        return None if target is None else interpret.class_index(handle, target)

    async def cached(self, key: str, compute: Callable[[], Any], *, on: ModelHandle | None = None) -> Any:
        """The result kept under ``key``; else ``compute()``'s (on the compute queue of ``on``'s device when
        given, awaited when it answers an awaitable), kept unless None. Requests for a key being computed
        wait for that one computation (a double click runs a method once); a request that goes away leaves
        it running for the others."""
        found = self.results.get(key)
        if found is not None:
            return found
        running = self._running.get(key)
        if running is None:
            running = asyncio.ensure_future(self._compute(key, compute, on))
            self._running[key] = running
            running.add_done_callback(lambda done: self._finished(key, done))
        return await asyncio.shield(running)

    async def _compute(self, key: str, compute: Callable[[], Any], on: ModelHandle | None) -> Any:
        found = await self.queue(on).run(compute) if on is not None else compute()
        if inspect.isawaitable(found):
            found = await found
        if found is not None:
            self.results.put(key, found)
        return found

    def _finished(self, key: str, done: asyncio.Future) -> None:
        if self._running.get(key) is done:
            del self._running[key]
        if not done.cancelled():
            done.exception()  # retrieved here too, in case every request waiting for it went away

    async def image(self, handle: ModelHandle, name: str) -> torch.Tensor:
        """The prepared ``(1, C, H, W)`` batch of a sample, a data item or an earlier upload (kept prepared)."""
        return await self.cached(f"prepared:{handle.name}:{name}", lambda: self._prepare(handle, name))

    def _prepare(self, handle: ModelHandle, name: object) -> torch.Tensor:
        if isinstance(name, str) and name.startswith(UPLOAD_PREFIX):
            image = kept_upload(name, self.uploads, handle.in_channels)
        else:
            image = named_image(name, self.data, handle.in_channels)
        return handle.prepare([image])

    def upload(self, content: bytes, filename: str) -> str:
        """Decode an upload once and keep it on disk (:func:`~cnnviz.explorer.images.keep_upload`); its name
        (``upload:HASH``) stands for it in later requests, after a restart too. ``filename`` is not used: a file
        is named by its content only."""
        return keep_upload(content, self.uploads, self.upload_side).name

    def kept(self, name: str) -> Upload:
        """What is kept under an upload's name: the original's size and the size kept."""
        return upload_of(name, self.uploads)

    def atlas_path(self, handle: ModelHandle, layer: str) -> Path:
        """Where the atlas of ``layer`` over the data is kept: named by the model's weights, the layer and the
        data's items."""
        if self.data is None:
            raise CnnvizError("no data set is served, so units have no top patches: start the server with "
                              "--data DIR|fashion-mnist")
        key = result_key("atlas", self.model_identity(handle), layer, self.data_identity())
        return self.cache_dir / "atlas" / f"{key}.npz"

    def model_identity(self, handle: ModelHandle) -> str:
        """The hash of ``handle``'s weights (computed once per served model)."""
        if handle.name not in self._identities:
            self._identities[handle.name] = model_identity(handle)
        return self._identities[handle.name]

    def data_identity(self) -> str | None:
        """The hash of the served data's items (None without data)."""
        if self.data is None:
            return None
        if "data" not in self._identities:
            self._identities["data"] = data_identity(self._data_source, self.data)
        return self._identities["data"]

    def sheet_path(self, handle: ModelHandle, layer: str) -> Path:
        """Where the sheet of ``layer`` is kept: named as ``cnnviz microscope --cache`` names it (by the weights,
        the layer, the data and the settings), so either reuses the other's."""
        top = TOP if self.data is None else min(TOP, len(self.data))
        return sheet_file(self.cache_dir, sheet_key(self.model_identity(handle), layer, self.data_identity(), top=top))

    def sheet_job(self, handle: ModelHandle, layer: str, first: list[int] | None = None) -> SheetJob | None:
        """The running sheet job of ``layer`` (started now unless one runs, picturing ``first`` first); None when
        the sheet is on disk."""
        path = self.sheet_path(handle, layer)
        if path.exists():
            return None
        job = self.sheet_jobs.get(path)
        if job is None or (job.over and not path.exists()):
            job = SheetJob(handle, layer, self.data, path, self.atlas_path(handle, layer) if self.data else None,
                           first=first)
            self.sheet_jobs[path] = job
            self.start(job, handle)
        return job

    def dissection(self, handle: ModelHandle, layer: str) -> Dissection | None:
        """The labels of ``layer``'s units kept in the cache folder for these weights (``cnnviz microscope
        --dissection FILE --cache DIR`` keeps them), else None."""
        return kept_dissection(handle, dissection_file(self.cache_dir, self.model_identity(handle), layer))

    async def sheet(self, handle: ModelHandle, layer: str) -> LayerSheet | None:
        """The sheet of ``layer``, from memory or the cache folder; None until made."""
        path = self.sheet_path(handle, layer)
        if not path.exists():  # never made, or removed from the cache folder: made again
            return None
        return await self.cached(f"sheet:{path.name}", lambda: load_sheet(handle, path))

    def audit_path(self, handle: ModelHandle, method: str | None, layer: str | None) -> Path:
        """The run folder of the audit of ``handle`` over the served data with ``method`` at ``layer`` (None: the
        audit's defaults): named by the model's weights, the method, the layer and the data's items."""
        if self.data is None:
            raise NotFound("no data set is served, so there is nothing to audit: start the server with --data "
                           "DIR (a folder of class sub-folders) or --data fashion-mnist")
        method = self.method(method).name if method else DEFAULT_METHOD  # one folder however the request spells it
        return self.cache_dir / "audit" / result_key("audit", self.model_identity(handle), self.data_identity(), method,
                                                     layer or handle.default_layer)

    async def audit_job(self, handle: ModelHandle, method: str | None, layer: str | None) -> AuditJob | None:
        """The running audit (started now unless one runs, resuming the run folder's finished chunks); None when
        it is kept in the cache folder. Bad data (one class, classes the model lacks) is refused here."""
        path = self.audit_path(handle, method, layer)
        if audit_kept(path):
            return None
        job = self.audit_jobs.get(path)
        if job is None or job.over:
            chosen = {"method": method} if method else {}
            run = await self.queue(handle).run(lambda: AuditRun(handle, self._data_source, workdir=path,
                                                                layer=layer, chunk=AUDIT_CHUNK, **chosen))
            job = self.audit_jobs.get(path)
            if job is None or job.over:  # no other request started one meanwhile
                job = self.audit_jobs[path] = AuditJob(run)
                self.start(job, handle)
        return job

    async def audit(self, handle: ModelHandle, method: str | None, layer: str | None) -> KeptAudit | None:
        """The kept audit (its report, items and maps), from memory or the cache folder; None until computed."""
        path = self.audit_path(handle, method, layer)
        return await self.cached(f"audit:{path.name}", lambda: open_run(path) if audit_kept(path) else None)

    def atlas_job(self, handle: ModelHandle, layer: str) -> AtlasJob | None:
        """The running atlas job of ``layer`` (started now unless one runs); None when the atlas is on disk."""
        path = self.atlas_path(handle, layer)
        if path.exists():
            return None
        job = self.atlas_jobs.get(path)
        if job is None or (job.over and not path.exists()):
            job = AtlasJob(handle, layer, self.data, path)
            self.atlas_jobs[path] = job
            self.start(job, handle)
        return job

    def start(self, job: Any, handle: ModelHandle) -> Any:
        """Keep ``job`` (forgetting the oldest finished ones past :data:`KEPT_JOBS`) and queue it on the device."""
        self.jobs[job.id] = job
        finished = [key for key, kept in self.jobs.items() if kept.over]
        for key in finished[:max(0, len(self.jobs) - KEPT_JOBS)]:
            self.jobs.pop(key)
        job.start(self.queue(handle))
        return job

    async def atlas(self, handle: ModelHandle, layer: str) -> Any:
        """The atlas of ``layer`` over the data, from memory or the cache folder; None until computed."""
        path = self.atlas_path(handle, layer)
        return await self.cached(f"atlas:{path.name}", lambda: load_atlas(handle, layer, path) if path.exists()
                                 else None)

    def close(self) -> None:
        """Stop the queues after their jobs; remove a temporary cache folder."""
        for job in list(self.jobs.values()):
            job.cancel()
        self.queues.close()
        if self._temporary is not None:
            self._temporary.cleanup()


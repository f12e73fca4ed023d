"""The audit of a classifier over a data set: predictions, each class's strategies (SpRAy), its concepts (CRAFT)
and the shortcut flags, computed in bounded steps over a run folder that a killed audit resumes from.

The work, in the order :meth:`AuditRun.step` does it, one unit per call:

1. ``maps``: a chunk of items (``chunk`` of them): their predictions (one forward pass) and their maps for their
   *true* class (the registered method, the one explain path: :func:`interpret.get_method` with the options as
   :func:`interpret.evaluate.explanation.call_options` passes them), downsized to ``map_size`` by area and
   written to the run folder (:mod:`.run`);
2. ``strategies``: one class: the spectral clustering of its maps and their embedding
   (:func:`.strategies.class_strategies`);
3. ``concepts``: one class: its concepts (:func:`.concepts.class_concepts`, on up to ``concept_items`` of its
   images, in ``layer``);
4. ``flags``: the shortcut flags over every class (:func:`.flags.shortcut_flags`), the prediction summary
   (:mod:`.predictions`), and ``audit.json`` with ``items.json`` (:mod:`.schema`).

Between two steps nothing is held: no hook, the model as found (the registry's guard), the global random
generators as found (a chunk's maps draw from a generator seeded by the chunk, so a stochastic method gives the same
maps resumed, sharded or not). Under ``torchrun`` :func:`audit` deals the chunks round-robin over the processes
(:mod:`interpret.core.distributed`), each writing its own into the shared run folder; rank 0 analyses, and every
rank returns the same :class:`~.schema.Audit`, equal to a single process's.

The default method is input x gradient (``captum:InputXGradient``), chosen by measurement (BENCHMARKS.md, the
planted-shortcut rows): one forward and one backward pass per batch, like Grad-CAM, but at the input's resolution.
On Fashion-MNIST models with a planted mark it put the marked images first (purity 0.98-1.00, recall 0.95-1.00)
and raised nothing on the clean controls, where Grad-CAM's 7 x 7 maps make every cluster "a small fixed place" and
flag clean classes. Its blind spot: a black mark has no input x gradient on its own pixels (x = 0).

Example:
    >>> import tempfile, torch
    >>> from cnnviz import zoo
    >>> handle = zoo.load("fashion_cnn", device="cpu")
    >>> images = torch.rand(24, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    >>> labels = torch.arange(24) % 2
    >>> run = AuditRun(handle, (images, labels), workdir=tempfile.mkdtemp(), chunk=10, concepts=0)
    >>> [p.stage for p in run.steps()]
    ['maps', 'maps', 'maps', 'strategies', 'strategies', 'flags']
    >>> run.result.overall["items"], sorted(run.result.classes)
    (24, ['T-shirt/top', 'Trouser'])
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from cnnviz.interpret.audit import concepts as concept_analysis
from cnnviz.interpret.audit import flags as flag_analysis
from cnnviz.interpret.audit import strategies as strategy_analysis
from cnnviz.interpret.audit.data import AuditData, audit_data
from cnnviz.interpret.audit.predictions import BINS, EXAMPLES, summarize
from cnnviz.interpret.audit.run import RunFolder
from cnnviz.interpret.audit.schema import Audit, Items, load
from cnnviz.interpret.core import (Group, attribution_map, auto_batch_size, barrier, chunks, current, get_method,
                                   model_identity)
from cnnviz.interpret.core.random_state import numpy_and_python_rng
from cnnviz.interpret.evaluate.explanation import call_options
from cnnviz.zoo.core import CnnvizError, NonNegativeInt, PositiveInt, UnitInterval, check_call, preserve
from cnnviz.zoo.handle import as_handle

DEFAULT_METHOD = "captum:InputXGradient"
MAP_SIZE = 16  # the most side of the stored maps: 60k items take 61 MB on disk, a class's clustering sees 256 features
CHUNK = 256  # items per chunk (one step): about half a second of fashion_cnn on 2 CPU cores
CLUSTERS = 8  # the most clusters the eigengap may choose per class
CONCEPTS = 5  # concepts per class
THRESHOLD = flag_analysis.DEFAULT_THRESHOLD  # the flag score above which a shortcut is flagged
CONCEPT_ITEMS = 64  # images per class the concepts are found on (evenly spread over the class)


@dataclass(frozen=True)
class Progress:
    """Where an audit stands after a step.

    Attributes:
        stage: what the step did: ``maps`` (a chunk), ``strategies`` or ``concepts`` (of a class), ``flags``
            (the end).
        done: steps done so far (resumed ones included).
        total: steps in all (chunks of this process, one or two per class, one).
        detail: what this step was about (``items 256-511``, a class name).
    """

    stage: str
    done: int
    total: int
    detail: str = ""

    @property
    def finished(self) -> bool:
        """Whether the audit is complete."""
        return self.done >= self.total


class AuditRun:
    """An audit advanced in bounded steps (:meth:`step`), resumable from its run folder ``workdir``.

    Args:
        handle: the classifier (a zoo handle or a module).
        data: a folder of class sub-folders, a data set name, ``(images, labels)`` (:mod:`.data`).
        method: a registered attribution method (default Grad-CAM).
        layer: the method's layer, where it takes one, and the layer concepts are found in (default: the
            model's default layer).
        workdir: the run folder (created with the first chunk).
        options: the method's options.
        map_size: the most side of the stored, downsized maps (the largest divisor of the input side up to it, so
            pixels pool evenly: 14 for a 28 px model, 16 for 224 px).
        chunk: items per step (kept from the run folder when resuming).
        batch_size: images per method call within a chunk (default: what fits the device).
        seed: seeds the clustering, the embedding and the concepts.
        max_clusters: the most clusters per class.
        concepts: concepts per class (0: none).
        concept_items: images per class the concepts are found on.
        bins: reliability bins.
        examples: mistakes and unsure correct predictions listed.
        threshold: the flag score above which a shortcut is flagged.
        group: the processes sharing the chunks (default: this process's torchrun group, or itself alone).
    """

    def __init__(self, handle: Any, data: Any, *, workdir: str | Path, method: str = DEFAULT_METHOD,
                 layer: str | None = None, options: dict[str, Any] | None = None, map_size: PositiveInt = MAP_SIZE,
                 chunk: PositiveInt = CHUNK, batch_size: PositiveInt | None = None, seed: int = 0,
                 max_clusters: PositiveInt = CLUSTERS, concepts: NonNegativeInt = CONCEPTS,
                 concept_items: PositiveInt = CONCEPT_ITEMS, bins: PositiveInt = BINS,
                 examples: NonNegativeInt = EXAMPLES, threshold: UnitInterval = THRESHOLD,
                 group: Group | None = None) -> None:
        self.handle = handle = as_handle(handle)
        if handle.config.task != "classification":
            raise CnnvizError(f"{handle.name} is a {handle.config.task} model: an audit needs a classifier")
        check_call(AuditRun.__init__, {"map_size": map_size, "chunk": chunk, "batch_size": batch_size,
                                       "max_clusters": max_clusters, "concepts": concepts,
                                       "concept_items": concept_items, "bins": bins, "examples": examples,
                                       "threshold": threshold})
        self.method = get_method(method, "attribution")
        self.layer = self._layer(layer)
        self.options = dict(options or {})
        self.kwargs = call_options(self.method, self.layer, self.options)
        self.data: AuditData = audit_data(handle, data)
        self.group = group or current()
        self.settings = {"seed": seed, "max_clusters": max_clusters, "concepts": concepts,
                         "concept_items": concept_items, "bins": bins, "examples": examples, "threshold": threshold}
        side = pooled_side(handle.input_size, map_size)
        spec = {"model": {"name": handle.name, "fingerprint": model_identity(handle)},
                "data": {"source": self.data.source, "kind": self.data.kind, "items": len(self.data),
                         "fingerprint": self.data.identity},
                "method": self.method.name, "layer": self.layer, "options": self.options, "map_size": [side, side],
                "chunk": chunk}
        self.folder = RunFolder(workdir, spec)
        self.batch_size = batch_size or auto_batch_size(handle, backward=True)
        self.classes = sorted(set(self.data.labels.tolist()))
        self.todo = [c for c in range(self.folder.chunks) if c % self.group.world == self.group.rank]
        mine = len(self.todo)
        self.todo = [c for c in self.todo if c not in self.folder.done()]
        self.analysis = [("strategies", k) for k in self.classes]
        if concepts and self.layer is not None:
            self.analysis += [("concepts", k) for k in self.classes]
        self.total = mine + len(self.analysis) + 1
        self.done = mine - len(self.todo)
        self.strategies: dict[str, Any] = {}
        self.concepts: dict[str, list[Any]] = {}
        self.result: Audit | None = None
        finished = self.folder.finished()
        if finished is not None and not self.todo and finished.get("settings") == self.settings:
            self.result = Audit.from_json(finished, self.folder.path)
            self.done = self.total

    def _layer(self, layer: str | None) -> str | None:
        """The method's layer (or, for a method without one, the layer concepts use), checked against the model."""
        layer = layer or self.handle.default_layer
        if layer is None and self.method.uses_layer:
            raise CnnvizError(f"{self.method.name} needs a layer and {self.handle.name} has no default one: "
                              f"give --layer (see cnnviz layers {self.handle.name})")
        if layer is not None:
            self.handle.layer(layer)  # an unknown layer is refused here, with the closest names
        return layer

    @property
    def map_size(self) -> tuple[int, int]:
        """The stored maps' ``(h, w)``."""
        h, w = self.folder.spec["map_size"]
        return int(h), int(w)

    @property
    def mapping(self) -> bool:
        """Whether chunks of this process are still to compute."""
        return bool(self.todo)

    def steps(self) -> Iterator[Progress]:
        """Every remaining step, one :class:`Progress` after each."""
        while self.result is None:
            yield self.step()

    def step(self) -> Progress:
        """Do the next unit of work (a chunk, a class, or the end) and say where the audit stands."""
        if self.result is not None:
            return Progress("flags", self.total, self.total, "done")
        if self.todo:
            chunk = self.todo.pop(0)
            self._chunk(chunk)
            rows = self.folder.rows(chunk)
            return self._advance("maps", f"items {rows.start}-{rows.stop - 1}")
        analysed = len(self.strategies) + len(self.concepts)
        if analysed < len(self.analysis):
            stage, index = self.analysis[analysed]
            (self._strategies if stage == "strategies" else self._concepts)(index)
            return self._advance(stage, self.data.classes[index])
        self._finish()
        return self._advance("flags", f"{len(self.result.flags) if self.result else 0} flags")

    def _advance(self, stage: str, detail: str) -> Progress:
        self.done += 1
        return Progress(stage, self.done, self.total, detail)

    # ---------------------------------------------------------------- maps

    def _predict(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each image's top probability and predicted class."""
        with preserve(self.handle), torch.no_grad():
            return self.handle(images).float().softmax(-1).max(-1)

    def _chunk(self, chunk: int) -> None:
        """One chunk's predictions and downsized maps, written to the run folder."""
        rows = list(self.folder.rows(chunk))
        images = self.data.prepared(self.handle, rows)
        labels = self.data.labels[rows]
        confidence, predicted = self._predict(images)
        devices = [self.handle.device] if self.handle.device.type == "cuda" else []
        maps = []
        with torch.random.fork_rng(devices=devices), numpy_and_python_rng(self.settings["seed"] + chunk):
            torch.manual_seed(self.settings["seed"] + chunk)
            for part in chunks(len(rows), self.batch_size):
                found = self.method.fn(self.handle, images[part], labels[part].tolist(), **self.kwargs)
                flat = attribution_map(found.detach().float())[:, None]
                maps.append(F.adaptive_avg_pool2d(flat, self.map_size)[:, 0].cpu())
        self.folder.write_chunk(chunk, torch.cat(maps).numpy(), labels, predicted.cpu().numpy(),
                                confidence.cpu().numpy())

    # ---------------------------------------------------------------- analysis

    def _strategies(self, index: int) -> None:
        """One class's strategies, from its stored maps."""
        rows = np.flatnonzero(self.data.labels == index)
        maps = np.asarray(self.folder.maps("r")[rows], dtype=np.float32)
        self.strategies[self.data.classes[index]] = strategy_analysis.class_strategies(
            maps, [self.data.ids[r] for r in rows], seed=self.settings["seed"],
            max_clusters=self.settings["max_clusters"])

    def _concepts(self, index: int) -> None:
        """One class's concepts, from up to ``concept_items`` of its images, evenly spread."""
        rows = np.flatnonzero(self.data.labels == index)
        settings = self.settings
        chosen = rows[np.unique(np.linspace(0, len(rows) - 1, min(len(rows), settings["concept_items"]))
                                .round().astype(int))]
        self.concepts[self.data.classes[index]] = concept_analysis.class_concepts(
            self.handle, self.data.prepared(self.handle, chosen.tolist()), index, str(self.layer),
            [self.data.ids[r] for r in chosen], concepts=settings["concepts"], seed=settings["seed"])

    def _finish(self) -> None:
        """Flags, the prediction summary, ``items.json`` and ``audit.json``."""
        labels, predicted, confidence = self.folder.predictions()
        names, ids = self.data.classes, self.data.ids
        summary = summarize(labels, predicted, confidence, names, ids=ids, bins=self.settings["bins"],
                            examples=self.settings["examples"])
        classes = {}
        for index in self.classes:
            name = names[index]
            counts = summary["per_class"][index]
            classes[name] = {"index": index, "items": counts["items"], "accuracy": counts["accuracy"],
                             **self.strategies[name].to_json(),
                             "concepts": [c.to_json() for c in self.concepts.get(name, [])]}
        threshold = self.settings["threshold"]
        flags = [f.to_json() for f in flag_analysis.shortcut_flags(self.strategies, threshold=threshold)]
        spec = self.folder.spec
        audit = Audit(model={"name": spec["model"]["name"], "fingerprint": spec["model"]["fingerprint"]},
                      data={"source": self.data.source, "kind": self.data.kind, "items": len(ids)},
                      method=self.method.name, layer=self.layer, map_size=self.map_size,
                      overall=summary["overall"], confusion=summary["confusion"],
                      calibration=summary["calibration"], mistakes=summary["mistakes"],
                      unsure_correct=summary["unsure_correct"], classes=classes, flags=flags,
                      threshold=threshold, settings=self.settings,
                      run_dir=self.folder.path)
        items = Items(list(ids), [names[k] for k in labels], [names[k] for k in predicted], confidence)
        self.folder.write_results(audit.to_json(), items.to_json())
        self.result = audit


def pooled_side(input_size: int, most: int = MAP_SIZE) -> int:
    """The side maps are stored at: the largest divisor of ``input_size`` from half of ``most`` up to ``most``, so
    each stored value averages whole pixels; ``most`` where none divides (or the input side, if smaller).

    Example:
        >>> pooled_side(28), pooled_side(224), pooled_side(299), pooled_side(31), pooled_side(8)
        (14, 16, 13, 16, 8)
    """
    if input_size <= most:
        return input_size
    return next((side for side in range(most, most // 2 - 1, -1) if side and input_size % side == 0), most)


def audit(handle: Any, data: Any, *, workdir: str | Path, method: str = DEFAULT_METHOD, layer: str | None = None,
          progress: bool = False, **settings: Any) -> Audit:
    """Audit ``handle`` over ``data``: predictions, strategies, concepts and flags, written to ``workdir``.

    Runs :class:`AuditRun` to its end (resuming what ``workdir`` holds). Under ``torchrun`` the chunks are shared
    over the processes and every rank returns the same audit.

    Args:
        handle: the classifier.
        data: a folder of class sub-folders, a data set name, or ``(images, labels)``.
        workdir: the run folder.
        method: a registered attribution method.
        layer: its layer (default: the model's).
        progress: show a progress bar (rank 0).
        **settings: the other arguments of :class:`AuditRun` (``options``, ``map_size``, ``chunk``, ...).

    Returns:
        The :class:`~.schema.Audit`, with its items and maps readable.

    Example:
        >>> import tempfile, torch
        >>> from cnnviz import zoo, interpret
        >>> handle = zoo.load("fashion_cnn", device="cpu")
        >>> data = (torch.rand(16, 1, 28, 28), torch.arange(16) % 4)
        >>> found = interpret.audit(handle, data, workdir=tempfile.mkdtemp(), concepts=0)
        >>> found.confusion["labels"][:2], found.maps.shape
        (['T-shirt/top', 'Trouser'], (16, 14, 14))
    """
    run = AuditRun(handle, data, workdir=workdir, method=method, layer=layer, **settings)
    return run_to_end(run, progress=progress)


def run_to_end(run: AuditRun, *, progress: bool = False) -> Audit:
    """Every remaining step of ``run``; under ``torchrun`` each process computes its chunks into the shared run
    folder, rank 0 analyses, and every rank returns the audit rank 0 wrote.

    Args:
        run: the audit.
        progress: show a progress bar (rank 0).
    """
    group = run.group
    if group.world > 1:
        if group.leader:
            run.folder.create()
        barrier(group)
    bar = tqdm(total=run.total, initial=run.done, desc="audit", unit="step", leave=False,
               disable=True if not progress or not group.leader else None)  # None: only in a terminal
    try:
        while run.mapping:
            bar.set_postfix_str(run.step().detail, refresh=False)
            bar.update()
        barrier(group)
        if group.leader:
            for step in run.steps():
                bar.set_postfix_str(step.detail, refresh=False)
                bar.update()
    finally:
        bar.close()
    barrier(group)
    return run.result if run.result is not None else load(run.folder.path)

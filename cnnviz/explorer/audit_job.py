"""The audit of a served model over ``--data`` as a job: :class:`interpret.audit.AuditRun`'s steps (a chunk of
items' predictions and maps, a class's analysis, the end) one per round on the compute queue, so a request made
meanwhile waits for at most one step, progress shows, and a cancel stops it at the next round. The run folder lies
in the cache folder, named by the model's weights, the data's items, the method and the layer: a cancelled or
killed audit resumes from its finished chunks, and a finished one is read back (:func:`open_run`) after a restart.

Example:
    >>> import tempfile, torch
    >>> from cnnviz import interpret, zoo
    >>> from cnnviz.explorer.compute_queue import ComputeQueue
    >>> handle, queue = zoo.load("fashion_cnn", device="cpu"), ComputeQueue("cpu")
    >>> data = (torch.rand(12, 1, 28, 28, generator=torch.Generator().manual_seed(0)), torch.arange(12) % 2)
    >>> folder = Path(tempfile.mkdtemp()) / "run"
    >>> job = AuditJob(interpret.audit.AuditRun(handle, data, workdir=folder, chunk=5, concepts=0))
    >>> job.start(queue).result(); job.state, job.step, job.steps, audit_kept(folder)
    ('done', 6, 6, True)
    >>> open_run(folder).rows[0].label
    'T-shirt/top'
    >>> queue.close()
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnnviz.explorer import drawing
from cnnviz.explorer.audit_view import Row, crop_box
from cnnviz.explorer.jobs import Job
from cnnviz.interpret.audit import AUDIT_FILE, ITEMS_FILE, AuditRun, load

CHUNK = 32  # items per round of the explorer's audit: a round of fashion_cnn takes ~0.1 s on 2 CPU cores, so a
# request made meanwhile waits little; a big model's round is longer, bounded by this many items


class AuditJob(Job):
    """An :class:`interpret.audit.AuditRun` advanced one step per round; its steps (chunks, classes, the end) are
    the job's."""

    kind = "audit"

    def __init__(self, run: AuditRun) -> None:
        super().__init__(run.total, 1)
        self.run = run
        self.step = run.done
        self.stage, self.detail = "maps", ""

    def advance(self) -> int:
        progress = self.run.step()
        self.steps, self.stage, self.detail = progress.total, progress.stage, progress.detail
        return progress.done - self.step

    def describe(self) -> dict[str, Any]:
        """The model, method and layer, the stage (``maps``, ``classes``, ``flags``) and what the last round did."""
        return {"model": self.run.handle.name, "method": self.run.method.name, "layer": self.run.layer,
                "stage": self.stage, "detail": self.detail}


def audit_kept(path: Path) -> bool:
    """Whether the run folder ``path`` holds a finished audit."""
    return (path / AUDIT_FILE).is_file() and (path / ITEMS_FILE).is_file()


@dataclass
class KeptAudit:
    """A finished audit as the data view reads it: its ``audit.json``, one :class:`Row` per item and the maps
    (memory-mapped), from its run folder ``path``."""

    path: Path
    report: dict[str, Any]
    rows: list[Row]
    maps: np.ndarray
    audit: Any

    def row_of(self, item: str | int) -> int:
        """The row of an item id."""
        return self.audit.items.row(item)

    @property
    def nbytes(self) -> int:  # what the result cache counts: the rows (the maps stay on disk)
        return 200 * len(self.rows)


def open_run(path: Path) -> KeptAudit:
    """The finished audit in the run folder ``path``."""
    audit = load(path)
    items = audit.items
    rows = [Row(r, item, label, predicted, float(confidence)) for r, (item, label, predicted, confidence)
            in enumerate(zip(items.ids, items.label, items.predicted, items.confidence))]
    return KeptAudit(Path(path), audit.to_json(), rows, audit.maps, audit)


def figure_row(run: KeptAudit, kind: str, parts: dict[str, Any]) -> int | None:
    """The row of the item a figure draws (None: a mean map, which draws no item)."""
    return parts["row"] if kind == "item" else None if kind == "mean" else run.row_of(parts["item"])


def figure_png(run: KeptAudit, kind: str, parts: dict[str, Any], image: np.ndarray | None) -> bytes:
    """A figure (:func:`explorer.audit_view.parse_figure`) as PNG bytes: a mean map, an item's ``image`` with its
    map, or a concept's crop of ``image``."""
    if kind == "mean":
        return drawing.map_png(parts["map"], side=112)
    assert image is not None
    if kind == "item":
        return drawing.item_png(image, run.maps[parts["row"]])
    return drawing.crop_png(image, crop_box(parts["box"], *image.shape[1:]))

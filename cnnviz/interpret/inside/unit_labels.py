"""What network dissection found for one layer: each unit's concept, IoU and detector verdict, and its JSON form.

:func:`interpret.dissect` makes a :class:`Dissection`; ``cnnviz dissect`` writes it as ``dissection.json``;
pages that name a channel read it back with :meth:`Dissection.from_json` and ask :meth:`Dissection.label`.

Example:
    >>> found = Dissection(layer="features.3", model="fashion_seg", fingerprint="abc", data="scenes", images=4,
    ...                    map_size=(32, 32), concepts=("Bag", "Shirt"), detector_iou=0.04,
    ...                    threshold=Threshold(0.005, (0.5, 1.5)),
    ...                    units=[UnitLabel(0, "Bag", 0.12, True), UnitLabel(1, "Shirt", 0.01, False)])
    >>> found.label(0).text, found.counts
    ('Bag (IoU 0.12)', {'Bag': 1, 'Shirt': 0})
    >>> Dissection.from_json(found.to_json()) == found
    True
"""

from __future__ import annotations

import json
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any

from cnnviz.interpret.core.fingerprint import weights_digest
from cnnviz.zoo.core import CnnvizError, dumps
from cnnviz.zoo.handle import ModelHandle

FORMAT = "cnnviz-dissection"
VERSION = 1


@dataclass(frozen=True)
class UnitLabel:
    """One unit's label.

    Attributes:
        channel: the unit (channel of the layer).
        concept: the concept its thresholded maps overlap best, or None when they overlap none.
        iou: that overlap, intersection over union summed over the data set, in [0, 1].
        detector: ``iou`` reaches the dissection's detector threshold (0.04 in Bau et al.).
        runners_up: the next concepts by IoU, ``(concept, iou)`` best first (at most two).
    """

    channel: int
    concept: str | None
    iou: float
    detector: bool
    runners_up: tuple[tuple[str, float], ...] = ()

    @property
    def text(self) -> str:
        """The label as a page shows it, IoU beside it so that a weak label reads as weak."""
        return "no concept" if self.concept is None else f"{self.concept} (IoU {self.iou:.2f})"

    def as_dict(self) -> dict[str, Any]:
        """The JSON form: ``channel``, ``concept``, ``iou``, ``detector`` and ``runners_up``."""
        return {"channel": self.channel, "concept": self.concept, "iou": self.iou, "detector": self.detector,
                "runners_up": [{"concept": c, "iou": v} for c, v in self.runners_up]}


@dataclass(frozen=True)
class Threshold:
    """Each unit's activation threshold: the value its activations exceed at ``quantile`` of all positions of
    all images (exact, :class:`~interpret.inside.top_quantile.TopQuantile`)."""

    quantile: float
    values: tuple[float, ...]


@dataclass
class Dissection:
    """Network dissection of one layer (Bau et al., CVPR 2017).

    Attributes:
        layer: the layer's dotted name.
        model: the model's name; ``fingerprint`` its weights' digest (:func:`interpret.core.weights_digest`).
        data: what was dissected over; ``images`` how many.
        map_size: the layer's ``(h, w)``.
        concepts: the concepts units were matched against (those with pixels in the data).
        detector_iou: the IoU from which a unit counts as a detector.
        threshold: per-unit activation thresholds and their quantile.
        units: one :class:`UnitLabel` per channel, in channel order.
        skipped: concepts the masks name but never mark (no pixels): left out, not matched.
        notes: what else a reader should know (skipped concepts, dead units).
    """

    layer: str
    model: str
    fingerprint: str
    data: str
    images: int
    map_size: tuple[int, int]
    concepts: tuple[str, ...]
    detector_iou: float
    threshold: Threshold
    units: list[UnitLabel]
    skipped: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def counts(self) -> dict[str, int]:
        """How many units of the layer detect each concept (every matched concept, zeros included)."""
        counts = dict.fromkeys(self.concepts, 0)
        for unit in self.detectors:
            counts[unit.concept] += 1  # type: ignore[index]
        return counts

    @property
    def detectors(self) -> list[UnitLabel]:
        """The units that count as detectors."""
        return [unit for unit in self.units if unit.detector]

    def label(self, channel: int) -> UnitLabel | None:
        """Channel ``channel``'s label, or None when it has no concept or the layer has no such channel."""
        if not 0 <= channel < len(self.units):
            return None
        unit = self.units[channel]
        return unit if unit.concept is not None else None

    def made_by(self, handle: ModelHandle) -> bool:
        """Whether these labels were computed with ``handle``'s current weights (a stale file says False)."""
        return self.model == handle.name and self.fingerprint == weights_digest(handle.model, handle.name)

    def as_dict(self) -> dict[str, Any]:
        """The JSON-ready form of ``dissection.json``."""
        return {"format": FORMAT, "version": VERSION, "model": self.model, "fingerprint": self.fingerprint,
                "layer": self.layer, "data": self.data, "images": self.images, "map_size": list(self.map_size),
                "method": "network dissection (Bau et al. 2017): per unit, activations above its top-quantile "
                          "threshold, upsampled bilinearly to the masks, IoU with each concept summed over images",
                "threshold": {"quantile": self.threshold.quantile, "values": list(self.threshold.values)},
                "detector_iou": self.detector_iou, "concepts": list(self.concepts), "skipped": list(self.skipped),
                "counts": self.counts, "units": [unit.as_dict() for unit in self.units], "notes": list(self.notes)}

    def to_json(self) -> str:
        """``dissection.json``'s text (strict JSON)."""
        return dumps(self.as_dict())

    @classmethod
    def from_json(cls, data: str | bytes | dict[str, Any]) -> Dissection:
        """A dissection read back from :meth:`to_json`'s text (or its parsed dict).

        Raises:
            CnnvizError: not a dissection record, or another version of the format.
        """
        record = json.loads(data) if isinstance(data, (str, bytes)) else data
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            raise CnnvizError("this is not a dissection.json (made by cnnviz dissect): no \"format\": "
                              f"\"{FORMAT}\" in it")
        if record.get("version") != VERSION:
            raise CnnvizError(f"dissection.json has format version {record.get('version')}, this cnnviz reads "
                              f"{VERSION}: run cnnviz dissect again")
        try:
            units = [UnitLabel(int(u["channel"]), u["concept"], float(u["iou"]), bool(u["detector"]),
                               tuple((r["concept"], float(r["iou"])) for r in u.get("runners_up", ())))
                     for u in record["units"]]
            threshold = Threshold(float(record["threshold"]["quantile"]),
                                  tuple(float(v) for v in record["threshold"]["values"]))
            return cls(layer=record["layer"], model=record["model"], fingerprint=record["fingerprint"],
                       data=record["data"], images=int(record["images"]),
                       map_size=(int(record["map_size"][0]), int(record["map_size"][1])),
                       concepts=tuple(record["concepts"]), detector_iou=float(record["detector_iou"]),
                       threshold=threshold, units=units, skipped=tuple(record.get("skipped", ())),
                       notes=tuple(record.get("notes", ())))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise CnnvizError(f"dissection.json is incomplete or damaged ({type(exc).__name__}: {exc}): run "
                              "cnnviz dissect again") from None


def read_dissection(handle: ModelHandle, path: str | Path, layer: str | None = None) -> Dissection:
    """The dissection at ``path`` (``cnnviz dissect``'s ``dissection.json``) for ``handle``'s layer ``layer``:
    refused with one line when made from other weights or for another layer, so a stale label is never shown."""
    try:
        found = Dissection.from_json(Path(path).read_text())
    except OSError as exc:
        raise CnnvizError(f"cannot read the dissection {path}: {exc.strerror or exc}") from None
    if not found.made_by(handle):
        raise CnnvizError(f"the dissection {path} was made from other weights ({found.model}), not the "
                          f"{handle.name} loaded now: run cnnviz dissect again")
    if layer is not None and found.layer != layer:
        raise CnnvizError(f"the dissection {path} labels {found.layer}, not {layer}")
    return found

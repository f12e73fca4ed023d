"""Every kind of request the explorer takes, one typed class each (see :mod:`~cnnviz.explorer.typed`). Where a
field comes from is the route's business: a name in the route's path is read from the path, else from the query
(GET) or the body (POST), so one class serves ``POST /api/explain`` and the page
``/m/{model}/image/{image}/explain/{method}`` alike.

Example:
    >>> Explain.decode({"image": "chelsea", "method": "gradcam", "box": "2"}, text={"box"}).box
    2
    >>> Job.decode({"channel": 1, "round_steps": 0})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cnnviz.CnnvizError: round_steps must be between 1 and 5000, got 0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cnnviz import interpret
from cnnviz.explorer.audit_view import FIGURE_NAMES, ORDERS, SHOWN, Selection
from cnnviz.explorer.fields import (ClassTarget, Choice, Flag, Integer, Number, Options, Pair, Region, Text, Upload,
                                    key_kind)
from cnnviz.explorer.errors import NotFound
from cnnviz.explorer.images import image_names
from cnnviz.explorer.jobs import GRACE, MAX_STEPS
from cnnviz.explorer.optimize_jobs import OPTIMIZATIONS, ROUND_STEPS, optimization
from cnnviz.explorer.typed import Ask, param
from cnnviz.interpret.evaluate import CurveSteps
from cnnviz.zoo.core import AtLeast, Between, declared

RESULT_FILES = ("colorbar.png", "heat.png", "image.png", "map.npy", "panel.png", "record.json")
FIRST_IMAGE = image_names()[0]

MODEL = Text(what="the name of a served model")
IMAGE = Text(what='a sample name such as "chelsea", "data:INDEX", or an uploaded file')
IMAGE_DOC = ('a sample ("chelsea"), "data:INDEX" of --data, or "upload:HASH" from /api/upload; or send the file '
             "as multipart field image")
LAYER = Text(what="a dotted layer name")
TARGET = ClassTarget(what="a class index or name")
TARGET_DOC = ("class index, or (part of) a class name: a whole name in any case, or text only one class name "
              "contains; default: the predicted class")
CHANNEL = Integer(AtLeast(0), what="a channel number")
TOP = Integer(Between(1, 1000))
ROUND_STEPS_FIELD = Integer(Between(1, MAX_STEPS))


def attribution_methods() -> list[Any]:
    return interpret.methods("attribution")


def optimizations() -> list[Any]:
    return [optimization(name) for name in OPTIMIZATIONS]


@dataclass(frozen=True, kw_only=True)
class Served(Ask):
    """Names a served model."""

    model: str | None = param(MODEL, "a served model (default: the first)")


@dataclass(frozen=True, kw_only=True)
class Pictured(Served):
    """Names a served model and an image."""

    image: str = param(IMAGE, IMAGE_DOC, required=True)


@dataclass(frozen=True, kw_only=True)
class Browsed(Served):
    """A served model looked at on an image (the first sample unless named)."""

    image: str = param(IMAGE, IMAGE_DOC, default=FIRST_IMAGE)


@dataclass(frozen=True, kw_only=True)
class Predict(Pictured):
    top: int = param(TOP, "how many classes", default=5)


@dataclass(frozen=True, kw_only=True)
class Explaining(Ask):
    """What an explanation is asked for, beside the model and the layer."""

    image: str = param(IMAGE, IMAGE_DOC, required=True)
    method: str = param(Text(what='the name of an attribution method, such as "gradcam"'),
                        "a registered attribution method, or captum:NAME", required=True)
    target: int | str | None = param(TARGET, TARGET_DOC)
    options: dict[str, Any] | None = param(Options(what="a JSON object of option names and values",
                                                   methods=attribution_methods),
                                           "the method's options (their schemas: components/schemas/options-*)")
    region: tuple[float, ...] | None = param(
        Region(what="four numbers x0,y0,x1,y1 in pixels of the prepared image", verb="is"),
        "a segmentation model's region of class target: x0,y0,x1,y1 in pixels of the prepared image")
    box: int | None = param(Integer(AtLeast(1), what="a detection number from 1 (best first)", verb="is"),
                            "a detector's detection to explain, from 1 (best first), as cnnviz explain --box")

    def explaining(self) -> dict[str, Any]:
        """The fields every explanation this request asks for shares (those declared here)."""
        return {name: getattr(self, name) for name in Explaining.params()}


@dataclass(frozen=True, kw_only=True)
class Explain(Served, Explaining):
    layer: str | None = param(LAYER, "the layer of a method that takes one (default: the model's)")


@dataclass(frozen=True, kw_only=True)
class Compare(Explaining):
    models: tuple[str, str] = param(Pair(item=MODEL, what='a list of two served models to compare, such as ["a", "b"]'),
                                    "the two served models", required=True)
    layers: tuple[str | None, str | None] = param(
        Pair(item=LAYER, nulls=True, what="a list of two layer names (or nulls), one per model"),
        "one layer per model, or nulls for their defaults", default=(None, None))


@dataclass(frozen=True, kw_only=True)
class ComparePage(Explaining):
    a: str = param(MODEL, "the first served model", required=True)
    b: str = param(MODEL, "the second served model", required=True)
    layer_a: str | None = param(LAYER, "the first model's layer")
    layer_b: str | None = param(LAYER, "the second model's layer")


@dataclass(frozen=True, kw_only=True)
class Evidence(Pictured):
    target: int | str | None = param(TARGET, TARGET_DOC)
    layer: str | None = param(LAYER, "the layer whose channels are ranked (default: the model's)")
    top: int = param(TOP, "how many channels", default=8)


@dataclass(frozen=True, kw_only=True)
class Faithfulness(Ask):
    key: str = param(key_kind("the key /api/explain answered"), "the key /api/explain answered", required=True)
    steps: int = param(Integer(declared(CurveSteps)[1]), "points of each curve, less one", default=16)


@dataclass(frozen=True, kw_only=True)
class Uploaded(Ask):
    image: str = param(Upload(what="an image file sent as the multipart file field image", pattern="upload:.+"),
                       "the image file", required=True)


@dataclass(frozen=True, kw_only=True)
class Layered(Served):
    """A served model's layer (the model's default layer unless named)."""

    layer: str | None = param(LAYER, "a layer (default: the model's)")


@dataclass(frozen=True, kw_only=True)
class Watched(Ask):
    """A job's start: a page that polls the job says so, and the job is cancelled once no page has polled it for
    :data:`explorer.jobs.GRACE` seconds."""

    watch: bool = param(Flag(what="a yes or no"), f"started by a page that polls it: cancelled after {GRACE:g} s "
                        "without a poll (default: run to the end)", default=False)


@dataclass(frozen=True, kw_only=True)
class Scan(Layered, Watched):
    pass


@dataclass(frozen=True, kw_only=True)
class Job(Layered, Watched):
    channel: int = param(CHANNEL, "the unit's channel", required=True)
    steps: int = param(Integer(Between(1, MAX_STEPS)), "steps in all", default=128)
    round_steps: int = param(ROUND_STEPS_FIELD, "steps per round (the picture shown after each)", default=16)


@dataclass(frozen=True, kw_only=True)
class Optimize(Pictured, Watched):
    method: str = param(Choice(values=tuple(OPTIMIZATIONS), noun="optimization",
                                               what=f"one of {', '.join(OPTIMIZATIONS)}"),
                        "; ".join(f"{name}: {about}" for name, about in OPTIMIZATIONS.items()), required=True)
    target: int | str | None = param(TARGET, TARGET_DOC)
    layer: str | None = param(LAYER, "the layer (invert, dream; default: the model's)")
    options: dict[str, Any] | None = param(Options(what="a JSON object of option names and values",
                                                   methods=optimizations),
                                           "the method's options (their schemas: components/schemas/options-*; "
                                           "steps and octaves are bounded)")
    round_steps: int = param(ROUND_STEPS_FIELD, "the most engine steps per round (other requests are served "
                             "between rounds; the picture shown after each)", default=ROUND_STEPS)


@dataclass(frozen=True, kw_only=True)
class LayerPage(Browsed):
    layer: str = param(LAYER, "the layer", required=True)


@dataclass(frozen=True, kw_only=True)
class Channel(Served):
    layer: str = param(LAYER, "the layer", required=True)
    channel: int = param(CHANNEL, "the channel", required=True)


@dataclass(frozen=True, kw_only=True)
class Unit(Channel, Browsed):
    pass


CHANNELS = Text(what="channel numbers separated by commas, such as 3,17,40", pattern=r"\d+(,\d+)*")


def chosen(channels: str | None) -> list[int] | None:
    """``"3,17"`` as ``[3, 17]`` (None: every channel).

    Example:
        >>> chosen("3,17"), chosen(None)
        ([3, 17], None)
    """
    return None if channels is None else [int(c) for c in channels.split(",")]


@dataclass(frozen=True, kw_only=True)
class SheetPart(Served):
    layer: str = param(LAYER, "the layer", required=True)
    channels: str | None = param(CHANNELS, "the channels to answer, such as 3,17,40 (default: every channel)")


@dataclass(frozen=True, kw_only=True)
class SheetStart(Scan):
    channels: str | None = param(CHANNELS, "the channels whose pictures a page shows, made first (such as 3,17)")


@dataclass(frozen=True, kw_only=True)
class ResultFile(Ask):
    key: str = param(key_kind("the key /api/explain answered"), "the key /api/explain answered", required=True)
    name: str = param(Choice(values=RESULT_FILES, noun="result file", what=f"one of {', '.join(RESULT_FILES)}",
                                  error=NotFound),
                      "one of the result's files", required=True)
    download: bool = param(Flag(what="a yes or no"), "as an attachment named as cnnviz explain names it",
                           default=False)


@dataclass(frozen=True, kw_only=True)
class MapFile(Ask):
    key: str = param(key_kind("a map's key, as a unit, evidence or patches answer names it"),
                     "a map's key", required=True)


@dataclass(frozen=True, kw_only=True)
class JobRef(Ask):
    job: str = param(Text(what="a job's id", error=NotFound), "the id a started job answered", required=True)


@dataclass(frozen=True, kw_only=True)
class Audited(Served):
    """The audit of a served model over ``--data`` (kept in the cache folder by the model's weights, the method, the
    layer and the data's items)."""

    method: str | None = param(Text(what='the name of an attribution method, such as "gradcam"'),
                               "the method whose maps are clustered (default: the audit's)")
    layer: str | None = param(LAYER, "the layer of the maps and concepts (default: the method's or model's)")


@dataclass(frozen=True, kw_only=True)
class AuditStart(Audited, Watched):
    pass


@dataclass(frozen=True, kw_only=True)
class AuditClass(Audited):
    name: str = param(Text(what="a class of the audit", error=NotFound), "a class name of the audit", required=True)


@dataclass(frozen=True, kw_only=True)
class AuditFigure(Audited):
    name: str = param(Text(what="item-ROW, mean-CLASS-CLUSTER or crop-CLASS-CONCEPT-RANK", pattern=FIGURE_NAMES,
                           error=NotFound), "a figure's name, as the data view names it", required=True)


CONFIDENCE = Number(Between(0, 1))


@dataclass(frozen=True, kw_only=True)
class AuditItems(Audited):
    """Which of the audited items to list (:class:`explorer.audit_view.Selection`), in which order, a page at a
    time."""

    label: str | None = param(Text(what="a class name"), "the items of this true class")
    predicted: str | None = param(Text(what="a class name"), "the items predicted as this class")
    correct: bool | None = param(Flag(what="a yes or no"), "right (true) or wrong (false) predictions only")
    low: float | None = param(CONFIDENCE, "the least confidence (the predicted class's probability)")
    high: float | None = param(CONFIDENCE, "confidence below this (1: up to 1 included)")
    cluster: int | None = param(Integer(AtLeast(0), what="a cluster id"), "the members of this cluster of label's "
                                "class")
    flag: int | None = param(Integer(AtLeast(1), what="a flag's rank from 1"), "the members of the flag of this rank")
    order: str = param(Choice(values=ORDERS, noun="order", what=f"one of {', '.join(ORDERS)}"),
                       "confidence (least first), -confidence (most first) or item (as the data lists them)",
                       default="item")
    offset: int = param(Integer(AtLeast(0)), "items skipped (paging)", default=0)
    limit: int = param(Integer(Between(1, 1000)), "items answered at most", default=SHOWN)

    def selection(self) -> Selection:
        """The selection this request names."""
        return Selection(label=self.label, predicted=self.predicted, correct=self.correct, low=self.low,
                         high=self.high, cluster=self.cluster, flag=self.flag)

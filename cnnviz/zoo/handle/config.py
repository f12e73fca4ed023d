"""A model's configuration as data: what it needs to be fed and read, apart from its weights.

timm's ``PretrainedCfg`` and torchvision's ``Weights.meta`` are the models: one small record that
the CLI, the gallery and the methods read instead of probing the network. Every source in
:mod:`zoo.sources` can say its configuration without building the model
(:func:`zoo.sources.model_config`), and every field can be overridden from Python
(:meth:`ModelConfig.replace`) and from the CLI (``--input-size``, ``--mean``, ``--classes``, ...).

Example:
    >>> cfg = ModelConfig(input_size=32, mean=(0.5,), std=(0.25,), classes=("no", "yes"))
    >>> cfg.channels, cfg.resize_size, cfg.num_classes
    (1, 37, 2)
    >>> cfg.replace(input_size=64).resize_size
    74
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from cnnviz.zoo.core.errors import CnnvizError

# How the input pipeline crops, as torchvision's ImageClassification and timm's crop_pct do it.
DEFAULT_CROP_FRACTION = 0.875


@dataclass(frozen=True)
class ModelConfig:
    """What a classifier expects and what it answers with.

    Attributes:
        input_size: side of the square input the network was trained on.
        resize_size: shorter side before the centre crop (default: ``input_size / 0.875``);
            equal to ``input_size`` means no crop.
        mean, std: per-channel normalization, one value per input channel.
        classes: class names, index-aligned with the logits (None: unnamed).
        num_classes: length of the logits (None: unknown until the model runs).
        default_layer: dotted name of the layer CAM-type methods use by default.
        fixed_input: True when the network only takes ``input_size`` (a ViT's position
            embedding, a flatten before a dense layer): methods then keep that size.
        hookable: False for saved programs (TorchScript) whose layers cannot take forward hooks;
            methods that need a named layer then refuse with a reason.
        source: where the model came from (``zoo:NAME``, ``torchvision:NAME``, a path, ...).
        training_log: path of the ``cnnviz train`` log the model was trained by, if any.
        task: ``classification`` (``(B, K)`` logits), ``segmentation`` (``(B, K, H, W)`` per-pixel scores)
            or ``detection`` (``(B, N, 6)`` packed detections, see :mod:`zoo.models.torchvision_dense`).
    """

    input_size: int = 224
    resize_size: int | None = None
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    classes: tuple[str, ...] | None = field(default=None, repr=False)
    num_classes: int | None = None
    default_layer: str | None = None
    fixed_input: bool = False
    hookable: bool = True
    source: str = "module"
    training_log: str | None = None
    task: str = "classification"

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # a frozen dataclass normalizes its fields once, here
        set_(self, "mean", _floats("mean (--mean, mean=)", self.mean))
        set_(self, "std", _floats("std (--std, std=)", self.std))
        if len(self.mean) != len(self.std):
            raise CnnvizError(f"mean (--mean) has {len(self.mean)} values but std (--std) has {len(self.std)}: "
                              "give one per channel to both")
        if any(s <= 0 for s in self.std):
            raise CnnvizError(f"std (--std, std=) must be positive, one value per channel, got {self.std}")
        set_(self, "input_size", _positive_int("input size (--input-size, input_size=)", self.input_size))
        resize = self.resize_size
        set_(self, "resize_size", _positive_int("resize size", resize) if resize is not None
             else max(self.input_size, round(self.input_size / DEFAULT_CROP_FRACTION)))
        if self.resize_size < self.input_size:
            raise CnnvizError(f"resize size {self.resize_size} is smaller than the input size {self.input_size}")
        if self.classes is not None:
            set_(self, "classes", tuple(str(c) for c in self.classes))
            if not self.classes:
                raise CnnvizError("the class list is empty: give one name per class")
            if self.num_classes is None:
                set_(self, "num_classes", len(self.classes))
        if self.num_classes is not None:
            set_(self, "num_classes", _positive_int("number of classes (--num-classes, num_classes=)", self.num_classes))
            if self.classes is not None and len(self.classes) != self.num_classes:
                raise CnnvizError(f"{len(self.classes)} class names for {self.num_classes} classes: "
                                  "give one name per class")

    @property
    def channels(self) -> int:
        """Number of input channels (one mean per channel)."""
        return len(self.mean)

    def replace(self, **changes: object) -> ModelConfig:
        """A copy with ``changes`` applied (None values are ignored); checked like a new one.

        A new ``input_size`` without a ``resize_size`` keeps the crop fraction.
        A new ``classes`` list also sets ``num_classes``.
        """
        changes = {k: v for k, v in changes.items() if v is not None}
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise CnnvizError(f"unknown configuration field(s) {', '.join(sorted(unknown))}")
        if "input_size" in changes and "resize_size" not in changes:
            side = _positive_int("input size (--input-size, input_size=)", changes["input_size"])
            changes["resize_size"] = round(side * self.resize_size / self.input_size)  # type: ignore[operator]
        if "classes" in changes and "num_classes" not in changes:
            changes["num_classes"] = None
        if "mean" in changes and "std" not in changes and len(changes["mean"]) != len(self.std):  # type: ignore[arg-type]
            changes["std"] = (1.0,) * len(changes["mean"])  # type: ignore[arg-type]
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, object]:
        """A JSON-safe dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def _floats(what: str, values: Sequence[float]) -> tuple[float, ...]:
    try:
        floats = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise CnnvizError(f"{what} must be numbers, one per channel, got {values!r}") from None
    if not floats:
        raise CnnvizError(f"{what} is empty: give one value per channel")
    if not all(math.isfinite(v) for v in floats):
        raise CnnvizError(f"{what} must be finite numbers, got {floats}")
    return floats


def _positive_int(what: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CnnvizError(f"the {what} must be a positive whole number, got {value!r}")
    return value

"""Receptive-field types: a box of input pixels, a layer's field (size, jump, start), a layer's row."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

from cnnviz.zoo.core import CnnvizError
from cnnviz.zoo.handle import ModelHandle

Size = int | tuple[int, int]


class Box(NamedTuple):
    """A box of input pixels, half-open: rows ``top:bottom``, columns ``left:right``."""

    top: int
    left: int
    bottom: int
    right: int

    @property
    def height(self) -> int:
        """Rows in the box."""
        return self.bottom - self.top

    @property
    def width(self) -> int:
        """Columns in the box."""
        return self.right - self.left

    def clip(self, height: int, width: int) -> Box:
        """The part of the box inside an image of ``height`` x ``width``."""
        return Box(max(self.top, 0), max(self.left, 0), min(self.bottom, height), min(self.right, width))


@dataclass(frozen=True)
class ReceptiveField:
    """Where the units of one layer look, in input pixels.

    Attributes:
        layer: dotted name of the layer.
        size: ``(height, width)`` of the box each unit sees (padding included).
        jump: input pixels between neighbouring units ``(dy, dx)`` (the
            product of the strides so far).
        start: input coordinates ``(y, x)`` of the top-left pixel of unit
            ``(0, 0)``'s box; negative where the box begins in the padding.
        input_size: ``(height, width)`` of the input the arithmetic was done
            for (TF-'SAME' padding depends on it).
        output_size: ``(height, width)`` of the layer's map at that input.
        channel_runs: when channels differ (concatenated branches),
            ``(channel count, size, start)`` for consecutive channels; ``size``
            and ``start`` above are then the largest box, over all channels.

    Example:
        >>> field = ReceptiveField("conv", (3, 3), (2, 2), (-1, -1), (8, 8), (4, 4))
        >>> field.box(0, 0), field.box(0, 0, clip=False)
        (Box(top=0, left=0, bottom=2, right=2), Box(top=-1, left=-1, bottom=2, right=2))
    """

    layer: str
    size: tuple[int, int]
    jump: tuple[int, int]
    start: tuple[int, int]
    input_size: tuple[int, int]
    output_size: tuple[int, int]
    channel_runs: tuple[tuple[int, tuple[int, int], tuple[int, int]], ...] = ()

    @property
    def offset(self) -> tuple[float, float]:
        """Input coordinates of the centre of unit ``(0, 0)``'s box (the classic 'offset')."""
        return (self.start[0] + (self.size[0] - 1) / 2, self.start[1] + (self.size[1] - 1) / 2)

    @property
    def same_for_all(self) -> bool:
        """Whether every channel has the same field."""
        return not self.channel_runs

    def channel(self, channel: int) -> ReceptiveField:
        """The exact field of one channel (the layer's own when all channels agree)."""
        if self.same_for_all:
            return self
        first = 0
        for count, size, start in self.channel_runs:
            if first <= channel < first + count:
                return replace(self, size=size, start=start, channel_runs=())
            first += count
        raise CnnvizError(f"channel {channel} is outside the {first} channels of {self.layer}")

    def box(self, y: int, x: int, *, channel: int | None = None, clip: bool = True) -> Box:
        """The input box of unit ``(y, x)``, clipped to the image unless ``clip=False``.

        Give ``channel`` where channels differ (:attr:`same_for_all` False);
        without it the box is the largest over the channels.
        """
        if channel is not None and not self.same_for_all:
            return self.channel(channel).box(y, x, clip=clip)
        if not (0 <= y < self.output_size[0] and 0 <= x < self.output_size[1]):
            raise CnnvizError(f"unit ({y}, {x}) is outside the {self.output_size[0]}x{self.output_size[1]} "
                              f"map of {self.layer}")
        top, left = self.start[0] + y * self.jump[0], self.start[1] + x * self.jump[1]
        box = Box(top, left, top + self.size[0], left + self.size[1])
        return box.clip(*self.input_size) if clip else box


@dataclass(frozen=True)
class LayerField:
    """One row of :func:`receptive_fields`: a module call and its field, or why there is none.

    Attributes:
        name: dotted name (``"name (call 2)"`` for a module's second call in one pass).
        type: class name of the module.
        field: the receptive field, or None when arithmetic cannot give it.
        reason: why ``field`` is None.
    """

    name: str
    type: str
    field: ReceptiveField | None
    reason: str = ""


def input_side(handle: ModelHandle, input_size: Size | None) -> tuple[int, int]:
    size = handle.input_size if input_size is None else input_size
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))

"""Planted shortcuts: a small mark stamped at a fixed place on chosen images, to test whether an audit finds it.

The recipe of Lapuschkin et al.'s "Clever Hans" case made on purpose: stamp a
mark (a :class:`Mark`, a small square; or a :class:`Frame`, a border) on most
images of one class before training, and the network may learn the mark
instead of the class. :func:`stamp` paints the mark; :func:`plant`
picks the images of a :class:`TensorData` to carry it. Nothing here writes
files (write the result with ``write_idx`` or ``save_image``).

Example:
    >>> data = TensorData(torch.zeros(4, 1, 28, 28, dtype=torch.uint8), torch.tensor([0, 1, 1, 1]))
    >>> marked_data, marked = plant(data, class_index=1, fraction=1.0, mark=Mark(x=0.1, y=0.1, size=3))
    >>> marked.tolist(), int(marked_data.images[1].sum()) == 9 * 255
    ([False, True, True, True], True)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cnnviz.zoo.core.errors import CnnvizError
from cnnviz.zoo.data.datasets import TensorData


@dataclass(frozen=True)
class Mark:
    """A filled square of ``size`` pixels centred at ``(x, y)`` (fractions of the width and height).

    Attributes:
        x, y: the centre, as fractions in [0, 1] of the image's width and height.
        size: the side in pixels.
        value: the brightness in [0, 1] (1: white).

    Example:
        >>> Mark(x=0.9, y=0.1, size=4).box(28, 28)
        (23, 1, 27, 5)
    """

    x: float
    y: float
    size: int = 4
    value: float = 1.0

    def __post_init__(self) -> None:
        if not (0.0 <= self.x <= 1.0 and 0.0 <= self.y <= 1.0):
            raise CnnvizError(f"a mark's centre is a fraction of the image in [0, 1], got ({self.x}, {self.y})")
        if self.size < 1 or not 0.0 <= self.value <= 1.0:
            raise CnnvizError(f"a mark needs a side of 1 pixel or more and a value in [0, 1], got {self.size}, "
                              f"{self.value}")

    def box(self, height: int, width: int) -> tuple[int, int, int, int]:
        """The mark's pixels ``(x0, y0, x1, y1)`` (x1, y1 exclusive) in an image of that size, kept inside it."""
        side = min(self.size, height, width)
        x0 = min(max(round(self.x * width - side / 2), 0), width - side)
        y0 = min(max(round(self.y * height - side / 2), 0), height - side)
        return x0, y0, x0 + side, y0 + side

    def fraction_box(self, height: int, width: int) -> tuple[float, float, float, float]:
        """:meth:`box` as fractions of the width and height, as audit relevance boxes are given."""
        x0, y0, x1, y1 = self.box(height, width)
        return x0 / width, y0 / height, x1 / width, y1 / height

    def mask(self, height: int, width: int) -> torch.Tensor:
        """The mark's pixels as a bool ``(height, width)`` mask."""
        x0, y0, x1, y1 = self.box(height, width)
        mask = torch.zeros(height, width, dtype=torch.bool)
        mask[y0:y1, x0:x1] = True
        return mask


@dataclass(frozen=True)
class Frame:
    """A border ``width`` pixels wide around the whole image, of brightness ``value``.

    Example:
        >>> int(Frame(width=1).mask(4, 4).sum())
        12
    """

    width: int = 1
    value: float = 1.0

    def __post_init__(self) -> None:
        if self.width < 1 or not 0.0 <= self.value <= 1.0:
            raise CnnvizError(f"a frame needs a width of 1 pixel or more and a value in [0, 1], got {self.width}, "
                              f"{self.value}")

    def mask(self, height: int, width: int) -> torch.Tensor:
        """The frame's pixels as a bool ``(height, width)`` mask."""
        mask = torch.ones(height, width, dtype=torch.bool)
        mask[self.width:height - self.width, self.width:width - self.width] = False
        return mask


def stamp(images: torch.Tensor, mark: Mark | Frame) -> torch.Tensor:
    """A copy of ``images`` ``(N, C, H, W)`` (uint8, or float in [0, 1]) with ``mark`` painted on each.

    Example:
        >>> stamp(torch.zeros(1, 1, 8, 8), Mark(x=0.5, y=0.5, size=2))[0, 0, 3:5, 3:5].tolist()
        [[1.0, 1.0], [1.0, 1.0]]
    """
    if images.dim() != 4:
        raise CnnvizError(f"stamp takes a batch (N, C, H, W), got {tuple(images.shape)}")
    out = images.clone()
    mask = mark.mask(images.shape[-2], images.shape[-1]).to(images.device)
    out[..., mask] = round(mark.value * 255) if images.dtype == torch.uint8 else mark.value
    return out


def plant(data: TensorData, *, class_index: int, fraction: float, mark: Mark | Frame,
          seed: int = 0) -> tuple[TensorData, torch.Tensor]:
    """``data`` with ``mark`` stamped on a seeded random ``fraction`` of the images of class ``class_index``.

    Returns:
        The new data (the input is not changed) and a bool ``(N,)`` tensor of which images carry the mark.
    """
    if not 0.0 <= fraction <= 1.0:
        raise CnnvizError(f"the fraction of marked images is in [0, 1], got {fraction}")
    members = torch.nonzero(data.labels == class_index).flatten()
    order = members[torch.randperm(len(members), generator=torch.Generator().manual_seed(seed))]
    chosen = order[:round(fraction * len(members))]
    marked = torch.zeros(len(data), dtype=torch.bool)
    marked[chosen] = True
    images = data.images.clone()
    images[chosen] = stamp(data.images[chosen], mark)
    return TensorData(images, data.labels.clone()), marked

"""A batch of maps that differ from clean maps only inside one box per row.

The incremental engine carries, for every layer, the clean map of each image
once and, per occluded row, only the values inside the box where that row can
differ. :class:`Patch` holds both and reads any window of the full map back
(:meth:`Patch.read`): box values where the window meets the box, clean values
elsewhere, a padding value outside the map.

Example:
    >>> clean = torch.zeros(1, 1, 4, 4)
    >>> patch = Patch(torch.ones(2, 1, 2, 2), top=torch.tensor([0, 2]), left=torch.tensor([1, 2]),
    ...               image=torch.tensor([0, 0]), clean=clean)
    >>> patch.full()[1, 0]
    tensor([[0., 0., 0., 0.],
            [0., 0., 0., 0.],
            [0., 0., 1., 1.],
            [0., 0., 1., 1.]])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Patch:
    """Rows ``k`` equal ``clean[image[k]]`` except inside the box at ``(top[k], left[k])`` of ``values``' size.

    Attributes:
        values: ``(K, C, h, w)`` the maps inside each row's box.
        top: ``(K,)`` first row of each box in the map.
        left: ``(K,)`` first column of each box.
        image: ``(K,)`` which clean map each row differs from.
        clean: ``(B, C, H, W)`` the clean maps.
    """

    values: torch.Tensor
    top: torch.Tensor
    left: torch.Tensor
    image: torch.Tensor
    clean: torch.Tensor

    @property
    def rows(self) -> int:
        """How many rows (occluded images) the patch stands for."""
        return self.values.shape[0]

    @property
    def covers_map(self) -> bool:
        """Whether every box is the whole map (then ``values`` is the full map)."""
        return self.values.shape[-2:] == self.clean.shape[-2:]

    def read(self, rows: torch.Tensor, cols: torch.Tensor, pad: float = 0.0) -> torch.Tensor:
        """The ``(K, C, L, M)`` window of each row's full map at map rows ``rows (K, L)`` and columns
        ``cols (K, M)``; positions outside the map read ``pad``."""
        height, width = self.clean.shape[-2:]
        box_h, box_w = self.values.shape[-2:]
        k = torch.arange(self.rows, device=rows.device)[:, None, None]
        clean = self.clean[self.image[:, None, None], :, rows.clamp(0, height - 1)[:, :, None],
                           cols.clamp(0, width - 1)[:, None, :]]  # (K, L, M, C)
        box_rows, box_cols = rows - self.top[:, None], cols - self.left[:, None]
        inside_box = (((box_rows >= 0) & (box_rows < box_h))[:, :, None]
                      & ((box_cols >= 0) & (box_cols < box_w))[:, None, :])
        boxed = self.values[k, :, box_rows.clamp(0, box_h - 1)[:, :, None], box_cols.clamp(0, box_w - 1)[:, None, :]]
        window = torch.where(inside_box[..., None], boxed, clean)
        inside_map = (((rows >= 0) & (rows < height))[:, :, None] & ((cols >= 0) & (cols < width))[:, None, :])
        if not bool(inside_map.all()):
            window = torch.where(inside_map[..., None], window, torch.full_like(window, pad))
        return window.permute(0, 3, 1, 2)  # channels-last strides, as oneDNN likes them

    def full(self) -> torch.Tensor:
        """The ``(K, C, H, W)`` full maps."""
        if self.covers_map:
            return self.values
        height, width = self.clean.shape[-2:]
        rows = torch.arange(height, device=self.top.device).expand(self.rows, height)
        cols = torch.arange(width, device=self.top.device).expand(self.rows, width)
        return self.read(rows, cols)


def span(start: torch.Tensor, length: int) -> torch.Tensor:
    """``(K, length)`` consecutive positions from each ``start``."""
    return start[:, None] + torch.arange(length, device=start.device)


def fit_box(low: torch.Tensor, high: torch.Tensor, size: int, cap: int | None = None) -> tuple[torch.Tensor, int]:
    """One box length for all rows and each row's first position, so that ``[low, high)`` of every row
    lies inside its box and the box inside ``[0, size)``.

    With ``cap``, boxes longer than ``cap`` shrink to ``cap`` around their centre: the approximate mode,
    which treats what lies outside as unchanged.
    """
    length = int((high - low).max().clamp(min=1))
    if cap is not None and length > cap:
        low, length = (low + high - cap) // 2, cap
    length = min(length, size)
    return low.clamp(0, size - length), length

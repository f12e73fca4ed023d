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
import torch.nn.functional as F


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
        if _shared_span(rows) and _shared_span(cols):
            return self._read_shared(int(rows[0, 0]), int(rows[0, -1]) + 1, int(cols[0, 0]), int(cols[0, -1]) + 1, pad)
        k = torch.arange(self.rows, device=rows.device)[:, None, None]
        if rows.shape[1] * cols.shape[1] * 2 >= height * width:  # most of the map: one gather from the full maps
            before_r, before_c = max(-int(rows.min()), 0), max(-int(cols.min()), 0)
            padding = (before_c, max(int(cols.max()) + 1 - width, 0), before_r, max(int(rows.max()) + 1 - height, 0))
            maps = F.pad(self.full(), padding, value=pad) if any(padding) else self.full()
            return maps[k, :, (rows + before_r)[:, :, None], (cols + before_c)[:, None, :]].permute(0, 3, 1, 2)
        box_h, box_w = self.values.shape[-2:]
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

    def _read_shared(self, top: int, bottom: int, left: int, right: int, pad: float) -> torch.Tensor:
        """The window ``[top, bottom) x [left, right)``, the same for every row: a slice of the full maps, padded."""
        height, width = self.clean.shape[-2:]
        crop = self.full()[:, :, max(top, 0):min(bottom, height), max(left, 0):min(right, width)]
        padding = (max(-left, 0), max(right - width, 0), max(-top, 0), max(bottom - height, 0))
        return F.pad(crop, padding, value=pad) if any(padding) else crop

    def full(self) -> torch.Tensor:
        """The ``(K, C, H, W)`` full maps: copies of the clean maps with each box written in."""
        if self.covers_map:
            return self.values
        maps = self.clean[self.image].contiguous(memory_format=_memory_format(self.clean))
        k = torch.arange(self.rows, device=self.top.device)[:, None, None]
        rows, cols = span(self.top, self.values.shape[-2]), span(self.left, self.values.shape[-1])
        maps[k, :, rows[:, :, None], cols[:, None, :]] = self.values.permute(0, 2, 3, 1).to(maps.dtype)
        return maps


def _shared_span(positions: torch.Tensor) -> bool:
    """Whether every row reads the same consecutive positions."""
    first = positions[0]
    return bool((positions == first).all()) and int(first[-1] - first[0]) == first.numel() - 1


def _memory_format(tensor: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if tensor.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format


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

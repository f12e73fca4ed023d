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
        box_h, box_w = self.values.shape[-2:]
        if (rows.shape[1], cols.shape[1]) == (box_h, box_w) and torch.equal(rows[:, 0], self.top) \
                and torch.equal(cols[:, 0], self.left):  # the box itself: a 1x1 convolution's read
            return self.values
        if self.covers_map and _shared_span(rows) and _shared_span(cols):
            return self._read_shared(int(rows[0, 0]), int(rows[0, -1]) + 1, int(cols[0, 0]), int(cols[0, -1]) + 1, pad)
        return self._read_boxed(rows[:, 0], cols[:, 0], rows.shape[1], cols.shape[1], pad)

    def _read_boxed(self, top: torch.Tensor, left: torch.Tensor, length: int, width: int,
                    pad: float) -> torch.Tensor:
        """Windows of ``length x width`` at ``(top[k], left[k])``: one gather of the clean windows from the
        padded clean maps (:func:`padded_clean`), then each row's box values written in."""
        rows = self.rows
        extremes = torch.stack([-top.min(), -left.min(), top.max() + length - self.clean.shape[-2],
                                left.max() + width - self.clean.shape[-1]])
        margin, padded = padded_clean(self.clean, max(int(extremes.max()), 0), pad)
        _, height, side, channels = padded.shape
        spare = [torch.cat([index, index[:1]]) for index in (self.image, top + margin, left + margin)]
        first = (spare[0] * height + spare[1]) * side + spare[2]  # each window's first pixel in the padded maps
        pixels = first[:, None, None] + (torch.arange(length, device=top.device) * side)[:, None] \
            + torch.arange(width, device=top.device)
        # (K + 1, length, width, C), a pixel's channels one row of the copy; row K takes the box values that
        # fall outside their window
        window = padded.view(-1, channels).index_select(0, pixels.flatten()).view(rows + 1, length, width, channels)
        box_h, box_w = self.values.shape[-2:]
        box_rows = span(self.top - top, box_h)
        box_cols = span(self.left - left, box_w)
        inside = (((box_rows >= 0) & (box_rows < length))[:, :, None]
                  & ((box_cols >= 0) & (box_cols < width))[:, None, :])
        row = torch.where(inside, torch.arange(rows, device=top.device)[:, None, None], rows)
        window.index_put_((row, box_rows.clamp(0, length - 1)[:, :, None], box_cols.clamp(0, width - 1)[:, None, :]),
                          self.values.permute(0, 2, 3, 1).to(window.dtype))
        return window[:rows].permute(0, 3, 1, 2)  # channels-last strides, as oneDNN likes them

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


def padded_clean(clean: torch.Tensor, margin: int, pad: float) -> tuple[int, torch.Tensor]:
    """``clean`` as ``(B, H, W, C)`` maps padded by at least ``margin`` pixels of ``pad`` on every side, and
    that margin; kept with the clean maps (they never change), so each layer pads once."""
    kept = clean.__dict__.setdefault("_cnnviz_padded", {})
    if pad not in kept or kept[pad][0] < margin:
        kept[pad] = margin, F.pad(clean, (margin,) * 4, value=pad).permute(0, 2, 3, 1).contiguous()
    return kept[pad]


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

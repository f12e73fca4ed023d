"""An exact upper quantile per channel, streamed over batches without keeping every value.

The ``1 - q`` quantile of ``total`` values (numpy's default, linear interpolation between the order statistics
at ascending ranks ``floor(h)`` and ``ceil(h)``, ``h = (total - 1)(1 - q)``) depends only on the largest
``total - floor(h)`` values. So each channel keeps its running largest ``keep ~ q * total + 1`` values on the
device: a batch is first cut down to the values above the channel's current floor (its ``keep``-th largest
so far, which only rises), and the kept values are merged with these candidates by a top-k once the
candidates are as many as the kept ones. The answer is exact (the same as ``numpy.quantile`` on all values,
up to float rounding of the interpolation), in one pass, with memory ``channels x keep`` values: for
network dissection's ``q = 0.005`` about 0.5 % of one channel's activations over the data set.

Example:
    >>> import numpy as np
    >>> values = torch.randn(3, 1000, generator=torch.Generator().manual_seed(0))
    >>> top = TopQuantile(3, 1000, 0.01)
    >>> for part in values.split(128, dim=1):
    ...     top.add(part)
    >>> expected = np.quantile(values.double().numpy(), 0.99, axis=1)
    >>> bool(np.allclose(top.value().numpy(), expected))
    True
"""

from __future__ import annotations

import math

import torch

from cnnviz.zoo.core import CnnvizError

MAX_KEPT = 1 << 28  # kept values over all channels (1 GiB of float32): beyond, ask for fewer images


class TopQuantile:
    """The running ``1 - quantile`` quantile of each of ``channels`` rows, over ``total`` values per row.

    Args:
        channels: rows (units).
        total: values each row will receive in all (images x positions).
        quantile: the upper fraction, in (0, 1): 0.005 gives the value the top 0.5 % exceed.
        device: where the kept values live.
    """

    def __init__(self, channels: int, total: int, quantile: float, device: torch.device | str = "cpu") -> None:
        if total < 1:
            raise CnnvizError("no values to take a quantile of: the data set is empty")
        position = (total - 1) * (1.0 - quantile)
        self.low = math.floor(position)
        self.fraction = position - self.low
        self.keep = total - self.low  # ascending ranks low .. total - 1
        if channels * self.keep > MAX_KEPT:
            raise CnnvizError(f"the top {quantile:g} of {total} values per unit is {self.keep} values for each of "
                              f"{channels} units, more than this exact quantile keeps: use fewer images or a "
                              "deeper layer")
        self.total, self.seen = total, 0
        self.kept = torch.empty(channels, 0, device=device)
        self.floor = torch.full((channels,), -math.inf, device=device)
        self.pending: list[torch.Tensor] = []
        self.pending_width = 0

    def add(self, values: torch.Tensor) -> None:
        """Takes a ``(channels, n)`` batch of values."""
        self.seen += values.shape[1]
        if self.seen > self.total:
            raise CnnvizError(f"{self.seen} values given for a quantile over {self.total}")
        if self.kept.shape[1] == self.keep:  # only values above the floor can enter the top
            above = int((values > self.floor[:, None]).sum(dim=1).max())
            if above == 0:
                return
            values = values.topk(above, dim=1).values
        self.pending.append(values.float())
        self.pending_width += values.shape[1]
        if self.pending_width >= max(self.keep, 1024):
            self._merge()

    def _merge(self) -> None:
        if not self.pending:
            return
        joined = torch.cat([self.kept, *self.pending], dim=1)
        self.kept = joined.topk(min(self.keep, joined.shape[1]), dim=1).values  # sorted, largest first
        self.pending, self.pending_width = [], 0
        if self.kept.shape[1] == self.keep:
            self.floor = self.kept[:, -1]

    def value(self) -> torch.Tensor:
        """The quantile of each row, ``(channels,)`` float64 on the CPU, once all ``total`` values came."""
        self._merge()
        if self.seen != self.total:
            raise CnnvizError(f"the quantile was promised {self.total} values per row but got {self.seen}")
        kept = self.kept.double().cpu()
        below = kept[:, self.keep - 1]  # ascending rank low
        above = kept[:, self.keep - 2] if self.fraction > 0 else below  # ascending rank low + 1
        return below + (above - below) * self.fraction

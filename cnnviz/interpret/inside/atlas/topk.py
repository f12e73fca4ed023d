"""The running top-k of the neuron atlas: per channel the k best (value, dataset index, position),
exact and deterministic, mergeable across batches and processes. Equal values are ranked by a second key, the
``tie`` (the pre-activation, for a layer that ends in a saturating activation: see :mod:`.scan`), then by the
smaller dataset index."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cnnviz.interpret.core.distributed import Group, gather_cat

LAST_INDEX = torch.iinfo(torch.int64).max  # index of the placeholders that fill a top-k before any data


@dataclass
class TopK:
    """Per channel, the ``k`` best (value, dataset index, position) seen so far; all ``(C, k)``.

    ``largest=False`` keeps the smallest values (the bottom-k). Equal values are ranked by ``ties`` (the larger
    first in a top-k), then go to the smaller dataset index, whatever the order the data came in.
    """

    values: torch.Tensor
    indices: torch.Tensor
    positions: torch.Tensor
    largest: bool
    ties: torch.Tensor

    @classmethod
    def empty(cls, channels: int, k: int, largest: bool, device: torch.device) -> TopK:
        """``k`` placeholders per channel that any real value displaces."""
        fill = float("-inf") if largest else float("inf")
        return cls(torch.full((channels, k), fill, device=device),
                   torch.full((channels, k), LAST_INDEX, dtype=torch.int64, device=device),
                   torch.zeros(channels, k, dtype=torch.int64, device=device), largest,
                   torch.full((channels, k), fill, device=device))

    @property
    def k(self) -> int:
        """How many entries each channel keeps."""
        return int(self.values.shape[1])

    def merge(self, values: torch.Tensor, indices: torch.Tensor, positions: torch.Tensor,
              ties: torch.Tensor | None = None) -> TopK:
        """The top-k of these entries and the new ``(C, n)`` ones (``ties``: their second key, default none)."""
        ties = torch.zeros_like(values) if ties is None else ties
        return select(torch.cat([self.values, values], 1), torch.cat([self.indices, indices], 1),
                      torch.cat([self.positions, positions], 1), self.k, self.largest,
                      torch.cat([self.ties.to(values.dtype), ties.to(values.dtype)], 1))


def select(values: torch.Tensor, indices: torch.Tensor, positions: torch.Tensor, k: int, largest: bool,
           ties: torch.Tensor | None = None) -> TopK:
    """The ``k`` best of ``(C, n)`` entries per row: equal values ranked by ``ties`` (default: none), then to the
    smaller index (exact, deterministic).

    Example:
        >>> best = select(torch.tensor([[1.0, 3.0, 3.0]]), torch.tensor([[0, 7, 2]]), torch.zeros(1, 3,
        ...               dtype=torch.long), 2, largest=True)
        >>> best.indices.tolist()
        [[2, 7]]
        >>> select(torch.tensor([[1.0, 3.0, 3.0]]), torch.tensor([[0, 7, 2]]), torch.zeros(1, 3, dtype=torch.long),
        ...        2, largest=True, ties=torch.tensor([[1.0, 5.0, 4.0]])).indices.tolist()
        [[7, 2]]
    """
    # NaN would sort above every number; it never wins.
    fill = float("-inf") if largest else float("inf")
    values = values.nan_to_num(nan=fill)
    ties = torch.zeros_like(values) if ties is None else ties.nan_to_num(nan=fill)
    # Three stable sorts: by index, then by tie, then by value, so equal values keep the order of their ties
    # and equal ties their index order.
    order = indices.argsort(dim=1, stable=True)
    values, indices, positions, ties = (t.gather(1, order) for t in (values, indices, positions, ties))
    order = ties.argsort(dim=1, descending=largest, stable=True)
    values, indices, positions, ties = (t.gather(1, order) for t in (values, indices, positions, ties))
    order = values.argsort(dim=1, descending=largest, stable=True)[:, :k]
    return TopK(*(t.gather(1, order) for t in (values, indices, positions)), largest, ties.gather(1, order))


def merge_ranks(best: TopK, group: Group) -> TopK:
    """The top-k over every process of ``group`` (the same on every rank)."""
    if group.world == 1:
        return best
    return select(gather_cat(best.values, group, 1), gather_cat(best.indices, group, 1),
                  gather_cat(best.positions, group, 1), best.k, best.largest, gather_cat(best.ties, group, 1))

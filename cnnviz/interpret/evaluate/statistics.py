"""Statistics for comparing maps and summarizing scores: rank correlation with ties, bootstrap intervals.

Every function works on rows of a batch at once, in torch, on any device.
Undefined values are NaN, never a number that looks like a result: the
rank correlation of a constant row has no meaning, and :func:`spearman`
says so with NaN (:func:`constant_rows` tells which rows and why).

Example:
    >>> a = torch.tensor([[1.0, 2.0, 2.0, 3.0], [1.0, 1.0, 1.0, 1.0]])
    >>> b = torch.tensor([[1.0, 3.0, 2.0, 4.0], [4.0, 3.0, 2.0, 1.0]])
    >>> [round(value, 4) for value in spearman(a, b).tolist()]
    [0.9487, nan]
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from cnnviz.zoo.core import CnnvizError


def average_ranks(values: torch.Tensor) -> torch.Tensor:
    """Ranks 1..N of each row of ``(B, N)`` values; tied values share their average rank (scipy's ``rankdata``).

    Example:
        >>> average_ranks(torch.tensor([[10.0, 30.0, 20.0, 20.0]]))
        tensor([[1.0000, 4.0000, 2.5000, 2.5000]], dtype=torch.float64)
    """
    rows, n = values.shape
    ordered, order = values.sort(dim=1, stable=True)
    starts = torch.ones_like(ordered, dtype=torch.bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    group = starts.cumsum(1) - 1  # tie group of each sorted position, 0-based within its row
    flat = (group + n * torch.arange(rows, device=values.device)[:, None]).flatten()
    positions = torch.arange(1, n + 1, device=values.device, dtype=torch.float64).expand(rows, n).flatten()
    totals = torch.zeros(rows * n, device=values.device, dtype=torch.float64).index_add_(0, flat, positions)
    counts = torch.zeros(rows * n, device=values.device, dtype=torch.float64).index_add_(
        0, flat, torch.ones_like(positions))
    mean_rank = (totals[flat] / counts[flat]).view(rows, n)
    return torch.empty_like(mean_rank).scatter_(1, order, mean_rank)


def constant_rows(values: torch.Tensor) -> torch.Tensor:
    """Which rows of ``(B, N)`` hold a single value (no ranking, no correlation), ``(B,)`` bool."""
    return (values == values[:, :1]).all(dim=1)


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation per row of two ``(B, N)`` tensors, in float64; NaN where a row is constant."""
    if a.shape != b.shape or a.dim() != 2:
        raise CnnvizError(f"correlation needs two (B, N) tensors of one shape, got {tuple(a.shape)} and "
                          f"{tuple(b.shape)}")
    a, b = a.double(), b.double()
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    denominator = a.norm(dim=1) * b.norm(dim=1)
    value = (a * b).sum(1) / denominator
    undefined = constant_rows(a) | constant_rows(b) | (denominator == 0)
    return torch.where(undefined, torch.full_like(value, math.nan), value.clamp(-1.0, 1.0))


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation per row of two ``(B, N)`` tensors, ties at their average rank.

    Equals ``scipy.stats.spearmanr`` row by row, including NaN where a row
    is constant (its ranks carry no order).
    """
    if a.shape != b.shape or a.dim() != 2:
        raise CnnvizError(f"spearman needs two (B, N) tensors of one shape, got {tuple(a.shape)} and "
                          f"{tuple(b.shape)}")
    return pearson(average_ranks(a), average_ranks(b))


def undefined_reason(original: torch.Tensor, changed: torch.Tensor, what: str = "map") -> list[str | None]:
    """Per row, why a comparison of ``original`` with ``changed`` ``(B, N)`` is undefined, or None."""
    first, second = constant_rows(original).tolist(), constant_rows(changed).tolist()
    return [f"the original {what} is constant" if a else f"the randomized {what} is constant" if b else None
            for a, b in zip(first, second)]


@dataclass(frozen=True)
class Summary:
    """Mean, spread and a bootstrap confidence interval of one score over images.

    Attributes:
        mean: mean over the images where the score is defined.
        std: sample standard deviation (ddof 1; NaN for one image).
        low, high: percentile bootstrap interval of the mean at ``level``.
        count: images with a defined score.
        undefined: images whose score is NaN (left out of the statistics).
        level: confidence level of the interval.
    """

    mean: float
    std: float
    low: float
    high: float
    count: int
    undefined: int
    level: float

    def as_dict(self) -> dict[str, float | int]:
        """The fields as a plain dict (for JSON and CSV)."""
        return asdict(self)


def bootstrap_interval(values: torch.Tensor, *, level: float = 0.95, resamples: int = 2000,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of 1-D ``values``, from a private generator.

    Args:
        level: confidence level in (0, 1).
        resamples: bootstrap resamples (at least 100).
        seed: seed of the generator used for resampling (the global RNG is not touched).

    Example:
        >>> low, high = bootstrap_interval(torch.arange(10.0))
        >>> low < 4.5 < high
        True
    """
    if not 0.0 < level < 1.0:
        raise CnnvizError(f"the confidence level must be between 0 and 1, got {level}")
    if resamples < 100:
        raise CnnvizError(f"at least 100 bootstrap resamples are needed, got {resamples}")
    values = values.detach().double().cpu().flatten()
    if values.numel() == 0:
        return math.nan, math.nan
    if values.numel() == 1:
        return float(values[0]), float(values[0])
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randint(values.numel(), (resamples, values.numel()), generator=generator)
    means = values[picks].mean(dim=1)
    tail = (1.0 - level) / 2
    low, high = torch.quantile(means, torch.tensor([tail, 1.0 - tail], dtype=torch.float64)).tolist()
    return low, high


def summarize(values: torch.Tensor, *, level: float = 0.95, resamples: int = 2000, seed: int = 0) -> Summary:
    """The :class:`Summary` of per-image scores ``values`` (NaN entries are counted, not averaged).

    Example:
        >>> summarize(torch.tensor([1.0, 2.0, 3.0, float("nan")])).undefined
        1
    """
    values = values.detach().double().cpu().flatten()
    defined = values[~values.isnan()]
    count = int(defined.numel())
    mean = float(defined.mean()) if count else math.nan
    std = float(defined.std()) if count > 1 else math.nan
    low, high = bootstrap_interval(defined, level=level, resamples=resamples, seed=seed)
    return Summary(mean, std, low, high, count, int(values.numel()) - count, level)

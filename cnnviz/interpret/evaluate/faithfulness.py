"""Faithfulness scores: do the maps point at what the model actually uses?

- Deletion / insertion (Petsiuk et al. 2018, RISE): remove the most salient
  pixels first (to black) and watch the class probability fall — lower
  area under the curve is better; or insert them first onto a blurred canvas
  and watch it rise — higher is better. A random map is the baseline to beat.
  With a dense target (a region of a segmentation, a detector's box) the curve
  follows the region's summed class probability, or the box's score.
- Model-parameter randomization (Adebayo et al. 2018): re-initialize the
  layers from the top down; a faithful map changes (low Spearman rank
  correlation, SSIM or HOG similarity with the original), an edge detector
  does not.

A constant map ranks no pixel above another: its areas, like its
correlations, are NaN, with the reason in ``undefined``. Randomness comes
from private generators; the global RNGs are left as they were. More
metrics: :mod:`interpret.evaluate.road`, :mod:`interpret.evaluate.robustness`,
:mod:`interpret.evaluate.complexity`; statistics in :mod:`interpret.evaluate.statistics`.

Example:
    >>> from cnnviz import zoo, interpret
    >>> handle = zoo.load("efficientnet_lite0", device="cpu")
    >>> images = handle.prepare([zoo.load_image("coffee")])
    >>> curves = deletion_insertion(handle, images, interpret.gradcam(handle, images))
    >>> float(curves.deletion_auc[0]) < float(curves.insertion_auc[0])
    True
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn
from torchvision.transforms.functional import gaussian_blur

from cnnviz.interpret.core.batching import auto_batch_size, chunks
from cnnviz.interpret.core.maps import attribution_map
from cnnviz.interpret.core.removal import removed_pixels
from cnnviz.interpret.core.targets import Target, class_probabilities, resolve_target, target_scores
from cnnviz.interpret.evaluate.map_sources import MapSource, as_maps
from cnnviz.interpret.evaluate.similarity import Measure, similarity
from cnnviz.interpret.evaluate.statistics import constant_rows, undefined_reason
from cnnviz.zoo.core import CnnvizError, preserve
from cnnviz.zoo.handle import as_handle, forward_runner

DeletionCanvas = Literal["black", "dataset_mean", "blur"]


@dataclass(frozen=True)
class Curves:
    """Deletion and insertion curves ``(B, steps + 1)`` with their areas ``(B,)``.

    ``undefined[i]`` says why image ``i``'s areas are NaN (its map is constant), else None.
    """

    fractions: torch.Tensor
    deletion: torch.Tensor
    insertion: torch.Tensor
    deletion_auc: torch.Tensor
    insertion_auc: torch.Tensor
    undefined: list[str | None] = field(default_factory=list)


def pixel_ranks(maps: torch.Tensor) -> torch.Tensor:
    """Rank of each pixel by saliency, 0 = most salient, ``(B, H*W)``; ties broken by position."""
    flat = attribution_map(maps).flatten(1)
    order = flat.argsort(dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(flat.shape[1], device=flat.device).expand_as(order))
    return ranks


def blurred_canvas(images: torch.Tensor) -> torch.Tensor:
    """The insertion start: the image blurred beyond recognition (kernel a quarter of the side)."""
    side = max(3, (min(images.shape[-2:]) // 4) | 1)
    return gaussian_blur(images, [side, side], [side / 4.0, side / 4.0])


def _auc(curve: torch.Tensor) -> torch.Tensor:
    return torch.trapezoid(curve, dx=1.0 / (curve.shape[1] - 1), dim=1)


def deletion_insertion(model: nn.Module, images: torch.Tensor, maps: MapSource, target: Target = None, *,
                       steps: int = 32, deletion_to: DeletionCanvas = "black",
                       batch_size: int | None = None) -> Curves:
    """Deletion and insertion (onto a blurred canvas) curves of the target probability.

    Args:
        maps: attributions ``(B, C|1, H, W)`` from any source (reduced by max |value|; resized to
            the images' size when smaller, see :func:`interpret.evaluate.map_sources.as_maps`).
        steps: points on each curve after the start (pixels move in ``H*W/steps`` groups).
        deletion_to: what a deleted pixel becomes: ``black`` (Petsiuk et al.'s figures), ``dataset_mean``
            (their code's zeros on a normalized input) or ``blur`` (the insertion canvas).
    """
    handle = as_handle(model)
    if steps < 2:
        raise CnnvizError(f"steps must be at least 2, got {steps}")
    with preserve(handle), torch.no_grad():
        images = images.to(handle.device)
        maps = as_maps(maps, images)
        constant = constant_rows(attribution_map(maps).flatten(1))
        indices = resolve_target(handle, images, target)
        batch, _, height, width = images.shape
        ranks = pixel_ranks(maps).view(batch, 1, height, width)
        counts = torch.linspace(0, height * width, steps + 1, device=images.device).round()
        canvas = blurred_canvas(images)
        removed = canvas if deletion_to == "blur" else removed_pixels(handle, images, deletion_to)
        batch_size = batch_size or auto_batch_size(handle)
        # Rows: (image, step, deletion|insertion), flattened so batches are full.
        total = batch * (steps + 1) * 2
        probs = torch.empty(total, device=images.device)
        forward = forward_runner(handle, total, batch_size)
        for rows in chunks(total, batch_size, desc="deletion/insertion"):
            flat = torch.arange(rows.start, rows.stop, device=images.device)
            img, step, insert = flat // (2 * (steps + 1)), (flat // 2) % (steps + 1), (flat % 2).bool()
            revealed = (ranks[img] < counts[step].view(-1, 1, 1, 1)).float()  # top pixels of this step
            deleted = torch.lerp(images[img], removed[img], revealed)
            inserted = torch.lerp(canvas[img], images[img], revealed)
            inputs = torch.where(insert.view(-1, 1, 1, 1), inserted, deleted)
            row_target = indices[img] if isinstance(indices, torch.Tensor) else indices
            probs[rows] = target_scores(handle, row_target, class_probabilities(handle, forward(inputs)))
    curves = probs.view(batch, steps + 1, 2)
    deletion, insertion = curves[..., 0], curves[..., 1]
    nan = torch.full((batch,), math.nan, device=images.device, dtype=deletion.dtype)
    reasons = ["the map is constant: it ranks no pixel above another" if c else None for c in constant.tolist()]
    return Curves(counts / (height * width), deletion, insertion, torch.where(constant, nan, _auc(deletion)),
                  torch.where(constant, nan, _auc(insertion)), reasons)


def random_maps(images: torch.Tensor, seed: int = 0, *, first: int = 0) -> torch.Tensor:
    """The baseline: uniform random maps ``(B, 1, H, W)``, image ``i``'s drawn from its own generator
    seeded by ``(seed, first + i)`` (so a shard of a dataset gets the maps a single run would).

    Example:
        >>> images = torch.rand(3, 3, 8, 8)
        >>> torch.equal(random_maps(images)[2], random_maps(images[2:], first=2)[0])
        True
    """
    maps = torch.empty(images.shape[0], 1, *images.shape[-2:], device=images.device)
    for i in range(images.shape[0]):
        generator = torch.Generator(device=images.device).manual_seed(seed * 1_000_003 + first + i)
        maps[i] = torch.rand(maps.shape[1:], generator=generator, device=images.device)
    return maps


@dataclass
class RandomBand:
    """What a random map scores on each image: the deletion and insertion AUCs of ``draws`` random maps
    ``(B, draws)``, and the band that a method's score must leave to count as better than random.

    Example:
        >>> band = RandomBand(torch.tensor([[0.2, 0.3, 0.4]]), torch.tensor([[0.5, 0.6, 0.7]]))
        >>> band.beats("insertion", torch.tensor([0.65])).tolist(), band.beats("deletion", torch.tensor([0.1])).tolist()
        ([False], [True])
    """

    deletion: torch.Tensor
    insertion: torch.Tensor

    def interval(self, metric: str, level: float = 0.95) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per image: the random maps' mean score and the central ``level`` share of their scores."""
        draws = getattr(self, metric).double()
        tail = (1 - level) / 2
        return (draws.mean(1), torch.quantile(draws, tail, dim=1), torch.quantile(draws, 1 - tail, dim=1))

    def beats(self, metric: str, scores: torch.Tensor, level: float = 0.95) -> torch.Tensor:
        """Per image: whether ``scores`` lie beyond the random band on the better side (insertion: above it;
        deletion: below it). NaN scores never beat it."""
        _, low, high = self.interval(metric, level)
        scores = scores.double().cpu()
        return scores > high.cpu() if metric == "insertion" else scores < low.cpu()


def random_band(model: nn.Module, images: torch.Tensor, target: Target = None, *, draws: int = 8, steps: int = 32,
                deletion_to: DeletionCanvas = "black", seed: int = 0, first: int = 0,
                batch_size: int | None = None) -> RandomBand:
    """Deletion and insertion AUCs of ``draws`` random maps per image (:func:`random_maps` with seeds
    ``seed .. seed + draws - 1``), in one batched pass: the baseline each method's score is read against."""
    if draws < 2:
        raise CnnvizError(f"draws must be at least 2 to give a band, got {draws}")
    handle = as_handle(model)
    images = images.to(handle.device)
    indices = resolve_target(handle, images, target)
    repeated = images.repeat_interleave(draws, dim=0)
    maps = torch.cat([random_maps(images[i:i + 1], seed + k, first=first + i)
                      for i in range(images.shape[0]) for k in range(draws)])
    row_target = indices.repeat_interleave(draws) if isinstance(indices, torch.Tensor) else indices
    curves = deletion_insertion(handle, repeated, maps, row_target, steps=steps, deletion_to=deletion_to,
                                batch_size=batch_size)
    return RandomBand(curves.deletion_auc.view(-1, draws).cpu(), curves.insertion_auc.view(-1, draws).cpu())


def randomization_units(net: nn.Module) -> list[tuple[str, nn.Module]]:
    """The network's blocks from input to output: top-level children, with
    Sequential/ModuleList children opened one level (ResNet's ``layer4.1``,
    EfficientNet's ``blocks.15``). Blocks without parameters are skipped."""
    units = []
    for name, child in net.named_children():
        if isinstance(child, (nn.Sequential, nn.ModuleList)) and len(child) > 1:
            units.extend((f"{name}.{sub}", module) for sub, module in child.named_children())
        else:
            units.append((name, child))
    return [(name, m) for name, m in units if any(True for _ in m.parameters())]


def reinitialize(module: nn.Module, generator: torch.Generator) -> None:
    """Fresh random weights for every submodule that knows how to reset itself, drawn from ``generator``.

    ``reset_parameters`` draws from the global RNG, so it runs on a forked
    RNG seeded from ``generator``: the caller's torch (CPU and CUDA) random
    state is the same afterwards.
    """
    seed = int(torch.randint(2 ** 62, (1,), generator=generator))
    devices = sorted({p.device.index or 0 for p in module.parameters() if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for sub in module.modules():
            if hasattr(sub, "reset_parameters"):
                sub.reset_parameters()


@dataclass(frozen=True)
class RandomizationResult:
    """Similarity ``(B,)`` of the original map with the map after randomizing each cascade of layers.

    Attributes:
        layers: the blocks re-initialized, top down (step k randomized ``layers[:k + 1]``).
        scores: per measure (``spearman``, ``ssim``, ``hog``), one ``(B,)`` tensor per step; NaN where
            undefined.
        undefined: per step, per image, why its scores are NaN (a constant map), else None.
        absolute: whether |map| was compared.
    """

    layers: list[str]
    scores: dict[str, list[torch.Tensor]]
    undefined: list[list[str | None]]
    absolute: bool = True

    @property
    def correlations(self) -> list[torch.Tensor]:
        """The Spearman rank correlations, one ``(B,)`` tensor per step."""
        if "spearman" not in self.scores:
            raise CnnvizError("this check did not measure Spearman correlations: ask for measures=('spearman',)")
        return self.scores["spearman"]


def randomization_check(model: nn.Module, images: torch.Tensor, explain: Callable[..., torch.Tensor],
                        target: Target = None, *, seed: int = 0, max_steps: int | None = None,
                        measures: tuple[Measure, ...] = ("spearman",), absolute: bool = True) -> RandomizationResult:
    """Cascading model-parameter randomization (Adebayo et al. 2018), on a copy of the model.

    Args:
        explain: ``explain(handle, images, target) -> maps``, e.g. ``interpret.gradcam``.
        target: kept fixed to the original model's prediction when ``None``.
        seed: seed of the private generator for the new weights.
        max_steps: stop after randomizing this many blocks (default: all, top down).
        measures: similarity measures to report (see :mod:`interpret.evaluate.similarity`).
        absolute: compare |map|, channels reduced by max |value| (else the signed maps, channels summed).

    Returns:
        After each step k, the similarity between the original map and the map
        of the model whose top k blocks are random. The user's model and the
        global random state are not touched.
    """
    if max_steps is not None and max_steps < 1:
        raise CnnvizError(f"max_steps must be at least 1, got {max_steps}")
    measures = tuple(dict.fromkeys(measures))
    if not measures:
        raise CnnvizError("give at least one similarity measure")
    handle = as_handle(model)
    with preserve(handle), torch.no_grad():
        indices = resolve_target(handle, images.to(handle.device), target)
    def reduce(maps: torch.Tensor) -> torch.Tensor:
        return attribution_map(maps) if absolute else as_maps(maps, images).sum(1)

    original = reduce(explain(handle, images, indices))
    clone = copy.deepcopy(handle)
    units = list(reversed(randomization_units(clone.model)))[:max_steps]
    generator = torch.Generator().manual_seed(seed)
    names: list[str] = []
    scores: dict[str, list[torch.Tensor]] = {m: [] for m in measures}
    undefined: list[list[str | None]] = []
    compared = original.abs() if absolute else original
    for name, unit in units:
        reinitialize(unit, generator)
        randomized = reduce(explain(clone, images, indices))
        names.append(name)
        for measure in measures:
            scores[measure].append(similarity(original, randomized, measure, absolute=absolute))
        undefined.append(undefined_reason(compared.flatten(1),
                                          (randomized.abs() if absolute else randomized).flatten(1)))
    return RandomizationResult(names, scores, undefined, absolute)

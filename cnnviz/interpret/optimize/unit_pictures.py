"""Feature visualizations of many channels of a layer in one run of the engine: one row per (channel, picture),
dealt to a batch of rows by a :class:`~interpret.optimize.row_queue.RowQueue` (a layer with more channels than
a batch holds goes through it with the batch always full), with the preset :func:`interpret.actmax` uses by
default. Several pictures of a channel (``diversity``) sit in adjacent rows and are pushed apart by
:func:`~interpret.optimize.objectives.diversity_within`.

Example:
    >>> from cnnviz import zoo
    >>> handle = zoo.load("fashion_cnn", device="cpu")
    >>> unit_pictures(handle, "features.block1", [0, 3], steps=4, diversity=2, progress=False).shape
    torch.Size([2, 2, 1, 28, 28])
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

import torch

from cnnviz.interpret.core.batching import auto_batch_size
from cnnviz.interpret.optimize import engine, objectives, param
from cnnviz.interpret.optimize.actmax import actmax, recipe
from cnnviz.interpret.optimize.row_queue import RowQueue
from cnnviz.zoo.core import CnnvizError
from cnnviz.zoo.handle import ModelHandle

DIVERSITY_WEIGHT = 1.0  # the diversity term against a channel's mean activation (lucid weighs it alike)


def default_preset() -> str:
    """The preset :func:`interpret.actmax` uses when none is named (what the sheet's pictures follow).

    Example:
        >>> default_preset() in ("strong", "maco", "robust", "jitter", "pixels")
        True
    """
    return str(inspect.signature(actmax).parameters["preset"].default)


def unit_pictures(handle: ModelHandle, layer: str, channels: Sequence[int], *, steps: int = 128,
                  diversity: int = 1, preset: str | None = None, seed: int = 0, batch_size: int | None = None,
                  progress: bool = True, made: Callable[[list[int], torch.Tensor], None] | None = None) -> torch.Tensor:
    """``diversity`` pictures of each of ``channels`` of ``layer`` (each maximizing the channel's mean
    activation), all in one run of the engine.

    Args:
        channels: the channels (indices of ``layer``'s output).
        steps: optimizer steps per picture.
        diversity: pictures per channel, pushed apart (Gram matrices of ``layer``) when more than one.
        preset: an :func:`interpret.actmax` preset (default: its default).
        seed: seeds the random transforms; a picture's start depends on ``(seed, channel, which of its
            pictures)`` only.
        batch_size: rows optimized together (default: what fits the device), rounded down to whole channels.
        made: called as soon as pictures are finished, with their places in ``channels`` and the pictures
            ``(n, diversity, C, S, S)`` (a page shows them while the others are made; the first channels first).

    Returns:
        ``(len(channels), diversity, C, S, S)`` in [0, 1], on the model's device.
    """
    channels = [int(c) for c in channels]
    if not channels:
        raise CnnvizError("no channels to visualize")
    if diversity < 1:
        raise CnnvizError(f"diversity is the number of pictures per channel, at least 1, got {diversity}")
    how = recipe(preset or default_preset())
    side = handle.input_size
    jobs = len(channels) * diversity
    fits = batch_size or auto_batch_size(handle, backward=True, size=side)
    rows = min(jobs, max(diversity, fits // diversity * diversity))
    shape = (rows, handle.in_channels, side, side)
    wanted = torch.tensor([channels[j // diversity] for j in range(rows)], device=handle.device)
    image = param.make_image(how.kind, shape, handle.device, seed=seed)
    out = torch.empty(jobs, *shape[1:], device=handle.device)

    def load(row: int, job: int) -> None:
        wanted[row] = channels[job // diversity]
        start_seed = seed * 1_000_003 + channels[job // diversity] * diversity + job % diversity
        fresh = param.make_image(how.kind, (1, *shape[1:]), handle.device, seed=start_seed)
        with torch.no_grad():
            for mine, start in zip(image.parameters(), fresh.parameters()):
                mine[row] = start[0]

    finished = torch.zeros(jobs, dtype=torch.bool)

    def keep(done: torch.Tensor, jobs_done: torch.Tensor, context: objectives.Context) -> None:
        out[jobs_done.to(out.device)] = context.images.detach()[done.to(out.device)]
        finished[jobs_done] = True
        if made is not None:
            complete = finished.view(len(channels), diversity).all(1)
            whole = sorted({j // diversity for j in jobs_done.tolist() if complete[j // diversity]})
            if whole:
                made(whole, out.unflatten(0, (len(channels), diversity))[whole].detach().cpu())

    objective = objectives.channel(layer, wanted)
    if diversity > 1:
        objective = objective + DIVERSITY_WEIGHT * objectives.diversity_within(layer, diversity)
    objective = how.objective(objective)  # with the preset's penalty
    never = lambda context: torch.zeros(rows, dtype=torch.bool)  # every picture runs all its steps
    queue = RowQueue(jobs, rows, load=load, passed=never, keep=keep, desc=f"pictures of {layer}", progress=progress)
    queue.start()
    try:
        engine.optimize(handle, image, objective, steps=steps, lr=how.lr, until=queue.until, refill=queue.refill,
                        transforms=how.transforms(side), every_step=how.every_step,
                        seed=seed, progress=False)
    finally:
        queue.close()
    return out.unflatten(0, (len(channels), diversity))

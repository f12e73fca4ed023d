"""Fooling images (Nguyen et al. 2015): unrecognizable pictures a model labels with near certainty.

From noise or a blank image, plain gradient ascent on the class's
log-probability with an L2 decay towards gray, on raw pixels, until the model
gives the class at least ``threshold`` (99.6% by default). A preset over the
one optimization engine: every class is one image of a batch, the batch is
cut in chunks that fill the device, and the engine's ``until`` stops a chunk
as soon as all its images pass. Each image is kept at the first step at which
it passed, so the reported confidence is that of the returned image.

Example:
    >>> from cnnviz import zoo
    >>> from cnnviz.interpret.attack.fooling import fool
    >>> handle = zoo.load("fashion_cnn", device="cpu")
    >>> result = fool(handle, ["Sneaker", "Bag"], progress=False)
    >>> bool((result.confidence >= 0.996).all())
    True
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from cnnviz.interpret.core.batching import auto_batch_size, chunks
from cnnviz.interpret.core.distributed import current, gather_jobs, shard_jobs
from cnnviz.interpret.core.targets import class_index, require_classifier
from cnnviz.interpret.optimize import engine, objectives, param
from cnnviz.interpret.optimize.objectives import Context
from cnnviz.interpret.optimize.row_queue import RowQueue
from cnnviz.zoo.core import (
    CnnvizError, NonNegativeFloat, OpenUnitInterval, PositiveFloat, PositiveInt, check_call, preserve,
)
from cnnviz.zoo.handle import ModelHandle, as_handle

Start = Literal["noise", "blank"]


@dataclass
class FoolingResult:
    """What :func:`fool` returns, one entry per requested class.

    Attributes:
        images: ``(N, C, H, W)`` in [0, 1] on the model's device.
        classes: class index per image ``(N,)``.
        confidence: the model's probability of that class on the returned image ``(N,)``.
        steps: gradient updates after which the image first passed ``(N,)``; -1 where it never did.
        threshold: the confidence asked for.
        seconds: wall-clock time of the whole job.
    """

    images: torch.Tensor
    classes: torch.Tensor
    confidence: torch.Tensor
    steps: torch.Tensor
    threshold: float
    seconds: float

    @property
    def reached(self) -> torch.Tensor:
        """Per image, whether the confidence is at least the threshold."""
        return self.confidence >= self.threshold


def parse_classes(handle: ModelHandle, spec: Sequence[int | str] | str) -> list[int]:
    """Class indices from names, indices, ``A-B`` ranges or ``all``."""
    items = [spec] if isinstance(spec, (str, int)) else list(spec)
    count = len(handle.classes) if handle.classes else None
    indices: list[int] = []
    for item in items:
        text = str(item).strip()
        if text == "all":
            if count is None:
                raise CnnvizError(f"{handle.name} has no class list: give class indices")
            indices.extend(range(count))
        elif "-" in text[1:] and all(part.strip().isdigit() for part in text.split("-", 1)):
            first, last = (class_index(handle, int(part)) for part in text.split("-", 1))
            if last < first:
                raise CnnvizError(f"class range {text!r} runs backwards: write it low-high")
            indices.extend(range(first, last + 1))
        else:
            indices.append(class_index(handle, item))
    if not indices:
        raise CnnvizError("no classes given: name classes, give indices, a range like 0-9, or all")
    return indices


def starting_images(shape: tuple[int, int, int, int], start: str, device: torch.device, seed: int) -> torch.Tensor:
    """Uniform noise in [0, 1], or a blank mid-gray image."""
    if start == "noise":
        generator = torch.Generator(device=device).manual_seed(seed)
        return torch.rand(shape, generator=generator, device=device)
    if start == "blank":
        return torch.full(shape, 0.5, device=device)
    raise CnnvizError(f"unknown start {start!r}: use noise or blank")


def fool(model: nn.Module, classes: Sequence[int | str] | str, *, threshold: OpenUnitInterval = 0.996, steps: PositiveInt = 200,
         lr: PositiveFloat = 0.01, decay: NonNegativeFloat = 0.1, start: Start = "noise", optimizer: str = "l2",
         batch_size: PositiveInt | None = None, seed: int = 0, refill: bool = True, progress: bool = True) -> FoolingResult:
    """One fooling image per class, batched; each stops once the model gives it ``threshold``.

    Args:
        model: a zoo handle (or a module taking [0, 1] images).
        classes: class names or indices, ``A-B`` ranges, or ``"all"``.
        threshold: the probability each image must reach.
        steps: the most gradient steps per chunk.
        lr: step size. For the default ``l2`` optimizer (normalized gradient ascent), the
            root-mean-square change of a pixel per step, so one value serves every image size;
            for the others, their learning rate.
        decay: weight of the L2 decay towards gray (mean squared distance from 0.5).
        start: ``noise`` (uniform) or ``blank`` (gray).
        optimizer: any engine optimizer (``l2``, ``sign``, ``adam``, ...).
        batch_size: images per chunk (default: what fits the device).
        seed: seeds the starting noise (with ``refill`` each class has its own, so its image does not
            depend on the classes fooled with it; without, each chunk has its own).
        refill: keep the batch full: as soon as an image passes (or runs out of steps) the next class
            takes its row, so no row idles while the slowest image of a batch finishes. Under
            ``torchrun`` (an initialized process group) each rank then fools every world-th class and
            all ranks get every result. False: chunks that each wait for their slowest image (the
            behaviour before; kept for comparison, not sharded).

    Returns:
        A :class:`FoolingResult` with images, confidences and steps per class.
    """
    check_call(fool, {"threshold": threshold, "steps": steps, "lr": lr, "decay": decay, "batch_size": batch_size})
    handle = as_handle(model)
    require_classifier(handle, "fooling images")
    if optimizer not in engine.OPTIMIZERS:
        raise CnnvizError(f"unknown optimizer {optimizer!r}: choose from {', '.join(engine.OPTIMIZERS)}")
    indices = torch.tensor(parse_classes(handle, classes), device=handle.device)
    shape = (len(indices), handle.in_channels, handle.input_size, handle.input_size)
    starting_images((1, *shape[1:]), start, handle.device, seed)  # checks ``start`` before any work
    size = batch_size or auto_batch_size(handle, backward=True)
    if optimizer == "l2":
        lr = lr * (shape[1] * shape[2] * shape[3]) ** 0.5  # RMS per pixel -> length of the whole step
    began = time.perf_counter()
    images = torch.empty(shape, device=handle.device)
    confidence = torch.empty(len(indices), device=handle.device)
    taken = torch.full((len(indices),), -1, dtype=torch.long)
    group = current()
    with preserve(handle):
        if refill:  # under torchrun each rank fools its share of the classes; each class's start is its own
            mine = shard_jobs(len(indices), group).to(handle.device)
            share = (images[mine], confidence[mine], taken[mine.cpu()])
            if len(mine):
                _fool_queue(handle, indices[mine], *share, start, threshold, steps, lr, decay, optimizer,
                            seed, min(size, len(mine)), progress)
            images = gather_jobs(share[0], len(indices), group)
            confidence = gather_jobs(share[1], len(indices), group)
            taken = gather_jobs(share[2].to(handle.device), len(indices), group).cpu()
        for number, part in enumerate(chunks(len(indices), size, desc="fooling" if progress else None)
                                      if not refill else []):
            wanted = indices[part]
            begin = starting_images((len(wanted), *shape[1:]), start, handle.device, seed + number)
            images[part], confidence[part] = _fool_chunk(handle, wanted, begin, threshold, steps, lr, decay,
                                                         optimizer, seed, progress, taken[part])
    if handle.device.type == "cuda":
        torch.cuda.synchronize(handle.device)
    return FoolingResult(images, indices, confidence, taken, threshold, time.perf_counter() - began)


class _Pixels(param.PixelImage):
    """Raw pixels as the 8-bit PNG will hold them: the model sees each pixel rounded to 1/255 (the
    gradient passes straight through the rounding), so the confidence reached is the saved file's.
    ``forward`` returns a new tensor: the engine's ``until`` sees the context after the optimizer step,
    when the parameter itself holds the stepped pixels, not the evaluated ones."""

    def forward(self) -> torch.Tensor:
        pixels = self.pixels.clamp(0, 1)
        return pixels + ((pixels * 255).round() / 255 - pixels).detach()


def _fool_queue(handle: ModelHandle, classes: torch.Tensor, images: torch.Tensor, confidence: torch.Tensor,
                taken: torch.Tensor, start: str, threshold: float, steps: int, lr: float, decay: float,
                optimizer: str, seed: int, rows: int, progress: bool) -> None:
    """All classes through ``rows`` rows of one engine run (a :class:`RowQueue`); fills ``images``,
    ``confidence`` and ``taken``."""
    device = images.device
    wanted = torch.zeros(rows, dtype=torch.long, device=device)  # the objective reads it: rows change class
    pixels = _Pixels(torch.zeros((rows, *images.shape[1:]), device=device))

    def load(row: int, job: int) -> None:
        wanted[row] = classes[job]
        with torch.no_grad():  # the noise of the class, whatever rows it shares the batch with
            pixels.pixels[row] = starting_images((1, *images.shape[1:]), start, device,
                                                 seed * 1_000_003 + int(classes[job]))[0]

    def probability(context: Context) -> torch.Tensor:
        return context.logits.detach().softmax(-1).gather(1, wanted[:, None])[:, 0]

    def keep(done: torch.Tensor, jobs: torch.Tensor, context: Context) -> None:
        # As evaluated: the first step that passed, or the last one tried.
        done = done.to(device)
        images[jobs.to(device)], confidence[jobs.to(device)] = context.images.detach()[done], probability(context)[done]

    queue = RowQueue(len(classes), rows, load=load, passed=lambda context: probability(context) >= threshold,
                     keep=keep, desc="fooling", progress=progress)
    queue.start()
    objective = objectives.class_log_prob(wanted) - decay * objectives.l2()
    try:
        engine.optimize(handle, pixels, objective, steps=steps, lr=lr, optimizer=optimizer, until=queue.until,
                        refill=queue.refill, seed=seed, progress=False, desc="fooling")
    finally:
        queue.close()
    taken.copy_(queue.taken)


def _fool_chunk(handle: ModelHandle, wanted: torch.Tensor, start: torch.Tensor, threshold: float, steps: int,
                lr: float, decay: float, optimizer: str, seed: int, progress: bool,
                taken: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Optimize one chunk; fills ``taken`` with the number of updates after which each image first passed."""
    kept = start.clone()
    kept_confidence = torch.zeros(len(wanted), device=start.device)
    captured = torch.zeros(len(wanted), dtype=torch.bool, device=start.device)
    rows = torch.arange(len(wanted), device=start.device)

    def until(context: Context) -> torch.Tensor:
        # The context holds the images this step evaluated: keep each at its first passing step.
        probability = context.logits.detach().softmax(-1)[rows, wanted]
        passed = probability >= threshold
        new = passed & ~captured
        kept[new] = context.images.detach()[new]
        kept_confidence[new] = probability[new]
        captured.logical_or_(passed)
        return passed

    objective = objectives.class_log_prob(wanted) - decay * objectives.l2()
    result = engine.optimize(handle, _Pixels(start), objective, steps=steps, lr=lr, optimizer=optimizer,
                             until=until, seed=seed, progress=progress, desc="fooling")
    if result.done_at is not None:
        taken.copy_(result.done_at)
    missing = ~captured
    if missing.any():  # never passed when evaluated; the final images had one more update
        kept[missing] = (result.images[missing].clamp(0, 1) * 255).round() / 255
        with torch.no_grad():
            final = handle(result.images[missing]).softmax(-1).gather(1, wanted[missing][:, None])[:, 0]
        kept_confidence[missing] = final
        late = missing.clone()
        late[missing] = final >= threshold
        taken[late.cpu()] = result.history.shape[0]  # updates applied to the final images
    return kept, kept_confidence

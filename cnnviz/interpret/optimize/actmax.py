"""Activation maximization: the image a class or a unit likes most.

Presets (``preset=``):
- ``strong`` (default): Fourier parameterization with 1/f scaling and
  decorrelated colour, through stronger transforms than ``robust``'s: crops
  zoomed in up to 1.6x, rotations up to 15 degrees, wider jitter, a little
  pixel noise and a random blur of up to 1.5 px at 224 px
  (:func:`transforms.strong`). Pictures that models which never
  saw the optimization also recognize (measured in ``bench/optimization.py``:
  lite0's pictures judged by efficientnet_lite1 and lite2).
- ``maco``: MaCo (Fel et al. 2023): only the Fourier phase is optimized, the
  magnitude is natural photos' mean spectrum (:class:`param.MacoImage`), with
  the standard transforms.
- ``robust``: the Fourier parameterization with the standard
  pad/jitter/scale/rotate transforms (the default until 2026-12-07).
- ``jitter``: raw pixels with the standard transforms and a blur every few
  steps (the classic hand-made recipe).
- ``pixels``: plain gradient ascent on raw pixels (reaches probability 1 but
  makes adversarial noise; kept to show why the others exist).

Every preset maximizes the class logit plus its log-probability (or a unit's
mean activation) with Adam.

Example:
    >>> from cnnviz import zoo, interpret
    >>> handle = zoo.load("efficientnet_lite0", device="cpu")
    >>> pictures = interpret.actmax(handle, target=["goldfish", "espresso"], steps=8)
    >>> pictures.shape
    torch.Size([2, 3, 224, 224])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torchvision.transforms.functional import gaussian_blur

from cnnviz.interpret.core.batching import auto_batch_size
from cnnviz.interpret.core.registry import method
from cnnviz.interpret.core.targets import class_index
from cnnviz.interpret.optimize import engine, objectives, param, transforms
from cnnviz.interpret.optimize.row_queue import RowQueue
from cnnviz.zoo.core import (CnnvizError, ImageSide, OpenUnitInterval, PositiveFloat, PositiveInt, preserve, record,
                              run_until)
from cnnviz.zoo.handle import ModelHandle

Preset = Literal["strong", "maco", "robust", "jitter", "pixels"]
STEADY = 16  # with until: steps in a row whose random view must pass before the picture itself is tested
STILL = 1e-6  # a unit's gradient norm at its picture below this: the optimization cannot move the picture


def unmoved(handle: ModelHandle, unit: str, images: torch.Tensor) -> list[str | None]:
    """Per picture ``(B, C, H, W)`` that :func:`actmax` made of ``unit``: None, or the one-line reason it is not
    a picture of what the unit likes: the unit's objective has no gradient there (norm below :data:`STILL`), so
    the picture stayed near its start (a dead unit, or one saturated everywhere, such as ReLU6 at its ceiling).

    Example:
        >>> from cnnviz import zoo
        >>> handle = zoo.load("fashion_cnn", device="cpu")
        >>> unmoved(handle, "features.block2:3", torch.rand(1, 1, 28, 28))
        [None]
    """
    objective, _, _ = parse_unit(handle, unit)
    modules = {name: handle.layer(name) for name in objective.layers}
    pictures = images.detach().to(handle.device).requires_grad_(True)
    with preserve(handle), torch.enable_grad(), record(modules, detach=False) as recordings:
        logits = run_until(handle, pictures, list(modules.values()))
        context = objectives.Context(pictures, pictures, logits, {n: r.output for n, r in recordings.items()})
        gradient, = torch.autograd.grad(objective(context).sum(), pictures, allow_unused=True)
    norms = torch.zeros(len(images)) if gradient is None else gradient.flatten(1).norm(dim=1).cpu()
    low, high = images.flatten(1).amin(1).tolist(), images.flatten(1).amax(1).tolist()
    return [f"the picture did not move (pixels {lo:.3f}-{hi:.3f}): the unit gives no gradient here (dead or "
            "saturated)" if norm < STILL else None for lo, hi, norm in zip(low, high, norms.tolist())]


def parse_unit(handle: ModelHandle, spec: str) -> tuple[objectives.Objective, int, list[str]]:
    """``layer:channel[:y:x]`` as an objective, a batch size and labels.

    ``channel`` may be ``N``, ``A-B`` (a range) or ``all``: one image per channel.
    """
    parts = spec.rsplit(":", 3) if spec.count(":") >= 3 else spec.rsplit(":", 1)
    if len(parts) not in (2, 4):
        raise CnnvizError(f"a unit is layer:channel or layer:channel:y:x, got {spec!r}")
    layer = parts[0]
    module = handle.layer(layer)
    channels_total = _channel_count(handle, module)
    text = parts[1]
    if text == "all":
        channels = list(range(channels_total))
    elif "-" in text:
        first, last = (int(v) for v in text.split("-", 1))
        channels = list(range(first, last + 1))
    elif text.isdigit():
        channels = [int(text)]
    else:
        raise CnnvizError(f"channel must be N, A-B or all, got {text!r}")
    if not channels or min(channels) < 0 or max(channels) >= channels_total:
        raise CnnvizError(f"channels {text} out of range: {layer} has channels 0..{channels_total - 1}")
    index = torch.tensor(channels)
    if len(parts) == 4:
        y, x = int(parts[2]), int(parts[3])
        objective = objectives.neuron(layer, index, y, x)
        labels = [f"{layer}:{c}:{y}:{x}" for c in channels]
    else:
        objective = objectives.channel(layer, index)
        labels = [f"{layer}:{c}" for c in channels]
    return objective, len(channels), labels


def _channel_count(handle: ModelHandle, module: nn.Module) -> int:
    from cnnviz.zoo.core import record

    with torch.no_grad(), record({"layer": module}) as rec:
        handle(torch.zeros(1, handle.in_channels, handle.input_size, handle.input_size, device=handle.device))
    output = rec["layer"].output
    if output.dim() < 2:
        raise CnnvizError("the layer's output has no channel axis")
    return output.shape[1]


def class_objective(handle: ModelHandle, target: object) -> tuple[objectives.Objective, int, list[str]]:
    """Logit plus log-probability of the target class(es), one image per class."""
    indices = class_objective_indices(handle, target).cpu()
    objective = objectives.class_logit(indices) + objectives.class_log_prob(indices)
    return objective, len(indices), [handle.class_name(int(i)) for i in indices]


def blur_every(period: int, sigma: float = 0.5) -> engine.Callable:
    """A step hook that blurs raw pixels every ``period`` steps (Yosinski et al. 2015)."""
    def hook(image: nn.Module, step: int) -> None:
        if step % period == 0 and isinstance(image, param.PixelImage):
            with torch.no_grad():
                image.pixels.copy_(gaussian_blur(image.pixels, [3, 3], [sigma, sigma]))
    return hook


@dataclass(frozen=True)
class Recipe:
    """What a preset optimizes: the parameterization, step size, penalty, transforms (``standard``, ``strong`` or
    None) and step hook."""

    kind: str
    lr: float
    l2: float
    augment: str | None
    every_step: Callable[[nn.Module, int], None] | None = None

    def transforms(self, side: int) -> transforms.Transform | None:
        """The random transforms at image side ``side``."""
        if self.augment == "strong":
            return transforms.strong(side)
        return transforms.standard(side) if self.augment == "standard" else None

    def objective(self, objective: objectives.Objective) -> objectives.Objective:
        """``objective`` with the preset's penalty."""
        return objective - self.l2 * objectives.l2() if self.l2 else objective


RECIPES = {"strong": Recipe("fourier", 0.05, 0.0, "strong"),
           "maco": Recipe("maco", 0.05, 0.0, "standard"),
           "robust": Recipe("fourier", 0.05, 0.0, "standard"),
           "jitter": Recipe("pixels", 0.02, 0.05, "standard", blur_every(4)),
           "pixels": Recipe("pixels", 0.01, 0.0, None)}


def recipe(preset: str) -> Recipe:
    """The :class:`Recipe` of ``preset`` (see the module docstring)."""
    if preset not in RECIPES:
        raise CnnvizError(f"unknown preset {preset!r}: {', '.join(RECIPES)}")
    return RECIPES[preset]


@method("actmax", "optimization", "activation maximization: the picture a class or unit likes most", order=100)
def actmax(handle: ModelHandle, images: torch.Tensor | None = None, target: object = None, *,
           unit: str | None = None, preset: Preset = "strong", steps: PositiveInt = 256, lr: PositiveFloat | None = None,
           size: ImageSide | None = None, until: OpenUnitInterval | None = None, batch_size: PositiveInt | None = None,
           seed: int = 0, progress: bool = True) -> torch.Tensor:
    """Optimize images to maximize a class (``target``) or a unit (``unit``), all in one batch.

    Args:
        images: starting images (``jitter``/``pixels`` presets only); default: noise.
        target: class index or name, or a list of them (one image each).
        unit: ``layer:channel``, ``layer:A-B``, ``layer:all`` or ``layer:channel:y:x`` instead of a class.
        preset: ``strong``, ``maco``, ``robust``, ``jitter`` or ``pixels`` (see the module docstring).
        steps: optimization steps (with ``until``: the most per image).
        lr: learning rate (default: the preset's).
        size: image side (default: the model's input size).
        until: stop each class's image once the model gives it this probability on its random views
            :data:`STEADY` steps in a row (presets with transforms) and then on the image itself, without
            transforms, instead of always running ``steps``. Stopping early costs transfer: lite0's pictures
            stopped at 0.99 are lite2's top-1 for 79-92 % of classes, against 88-96 % after all 256 steps
            (stopping at the first passing step: 62 %; ``bench/optimization.py --until 0.99``).
            Freed rows take the next classes at once, so a batch of ``batch_size`` rows stays full;
            each class then starts from noise seeded by ``(seed, class)``. Class targets only.
        batch_size: rows optimized together with ``until`` (default: what fits the device).

    Returns:
        Images ``(B, C, size, size)`` in [0, 1].
    """
    if (target is None) == (unit is None):
        raise CnnvizError("give a class target or a unit (layer:channel), not both or neither")
    if until is not None and unit is not None:
        raise CnnvizError("until stops at a class probability: give a class target, not a unit")
    objective, batch, _ = class_objective(handle, target) if unit is None else parse_unit(handle, unit)
    side = size or handle.input_size
    shape = (batch, handle.in_channels, side, side)
    if images is not None and images.shape[0] not in (1, batch):
        raise CnnvizError(f"{images.shape[0]} starting images for {batch} targets")
    if images is not None:
        images = images.expand(batch, -1, -1, -1)
    how = recipe(preset)
    objective = how.objective(objective)
    settings = {"steps": steps, "lr": lr or how.lr, "transforms": how.transforms(side),
                "every_step": how.every_step, "seed": seed}
    if until is not None:
        classes = class_objective_indices(handle, target)
        return _actmax_until(handle, classes, images, how, shape, until, batch_size, settings, progress)
    image = param.make_image(how.kind, shape, handle.device, init=images, seed=seed)
    return engine.optimize(handle, image, objective, progress=progress, desc="actmax", **settings).images


def class_objective_indices(handle: ModelHandle, target: object) -> torch.Tensor:
    """The class indices of ``target`` (one or a list of classes)."""
    targets = list(target) if isinstance(target, (list, tuple, torch.Tensor)) else [target]
    return torch.tensor([class_index(handle, t) for t in targets], device=handle.device)


def _actmax_until(handle: ModelHandle, classes: torch.Tensor, images: torch.Tensor | None, how: Recipe,
                  shape: tuple[int, int, int, int], until: float, batch_size: int | None, settings: dict,
                  progress: bool) -> torch.Tensor:
    """Class pictures that each stop at probability ``until``, through one refilled batch (a RowQueue)."""
    rows = min(batch_size or auto_batch_size(handle, backward=True, size=shape[-1]), len(classes))
    row_shape = (rows, *shape[1:])
    seed = settings["seed"]

    def start(rows_shape: tuple[int, ...], init: torch.Tensor | None, seed: int) -> nn.Module:
        if how.kind == "pixels":  # snapshots: the image kept is the one the passing step evaluated
            return param.SnapshotPixels(init, shape=rows_shape, device=handle.device, seed=seed)
        return param.make_image(how.kind, rows_shape, handle.device, init=init, seed=seed)

    def fresh(job: int) -> nn.Module:  # a class's start depends on the class, not on the rows beside it
        init = images[job:job + 1] if images is not None else None
        return start((1, *shape[1:]), init, seed * 1_000_003 + int(classes[job]))

    image = start(row_shape, None, seed)
    wanted = classes[:rows].clone()
    out = torch.empty(shape, device=handle.device)

    steady = torch.zeros(rows, dtype=torch.long, device=handle.device)  # steps in a row each row's view passed

    def load(row: int, job: int) -> None:
        wanted[row] = classes[job]
        steady[row] = 0
        with torch.no_grad():
            for mine, start in zip(image.parameters(), fresh(job).parameters()):
                mine[row] = start[0]

    def probability(logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        return logits.detach().softmax(-1).gather(1, classes[:, None])[:, 0]

    def reached(context: objectives.Context) -> torch.Tensor:
        # The transformed views of STEADY steps in a row are the first test (a picture confident from one angle
        # only is not done); the image itself, as it will be returned, decides.
        view_passed = probability(context.logits, wanted) >= until
        steady.mul_(view_passed).add_(view_passed)
        passed = steady >= (STEADY if how.augment else 1)  # without transforms the view is the image itself
        if bool(passed.any()):
            with torch.no_grad():
                plain = probability(handle(context.images[passed].detach()), wanted[passed])
            passed[passed.clone()] = plain >= until
        return passed

    def keep(done: torch.Tensor, jobs: torch.Tensor, context: objectives.Context) -> None:
        out[jobs.to(out.device)] = context.images.detach()[done.to(out.device)]

    queue = RowQueue(len(classes), rows, load=load, passed=reached, keep=keep, desc="actmax", progress=progress)
    queue.start()
    objective = how.objective(objectives.class_logit(wanted) + objectives.class_log_prob(wanted))
    try:
        engine.optimize(handle, image, objective, until=queue.until, refill=queue.refill, progress=False,
                        desc="actmax", **settings)
    finally:
        queue.close()
    return out


def class_scores(handle: ModelHandle, images: torch.Tensor, classes: Sequence[int], top: int = 5) -> dict:
    """Probability of each image's class and whether it is in the top-``top`` (for quality reports)."""
    with preserve(handle), torch.no_grad():
        probs = handle(images).softmax(-1)
    index = torch.tensor(list(classes), device=probs.device)
    return {"probability": probs.gather(1, index[:, None])[:, 0].tolist(),
            f"in_top{top}": (probs.topk(min(top, probs.shape[1]), dim=1).indices == index[:, None]).any(1).tolist()}

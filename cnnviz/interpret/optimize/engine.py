"""The one image-optimization engine behind activation maximization, feature
inversion, DeepDream, style transfer and fooling images.

Each step: parameterization -> transforms -> model -> objective (+ regularizers)
-> optimizer step -> projection. The presets in ``actmax.py``,
``inversion.py``, ``deepdream.py``, ... only choose these parts.

Example:
    >>> from cnnviz import zoo
    >>> from cnnviz.interpret.optimize import engine, objectives, param
    >>> handle = zoo.load("efficientnet_lite0", device="cpu")
    >>> image = param.FourierImage((1, 3, 224, 224))
    >>> result = engine.optimize(handle, image, objectives.class_logit(1), steps=4, progress=False)
    >>> result.images.shape
    torch.Size([1, 3, 224, 224])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from cnnviz.interpret.optimize.objectives import Context, Objective
from cnnviz.interpret.optimize.step_watch import step_watchers
from cnnviz.interpret.optimize.transforms import Transform
from cnnviz.zoo.core import CnnvizError, preserve, record, run_until
from cnnviz.zoo.handle import ModelHandle

OPTIMIZERS = ("adam", "sgd", "lbfgs", "normalized", "sign", "l2")


class SteepestAscent(torch.optim.Optimizer):
    """Plain steps of length ``lr`` along each image's gradient direction under one norm.

    ``scale`` picks the norm the step is measured in, per image (first axis):

    - ``"mean_abs"``: the gradient divided by its mean absolute value
      (DeepDream's update: the same step size in every octave and layer);
    - ``"sign"``: the sign of the gradient, the steepest step in L-infinity
      (FGSM and L-infinity PGD: every pixel moves by exactly ``lr``);
    - ``"l2"``: the gradient divided by its L2 norm, the steepest step in L2
      (the step has L2 length exactly ``lr``).
    """

    SCALES = ("mean_abs", "sign", "l2")

    def __init__(self, params: object, lr: float = 0.01, scale: str = "mean_abs") -> None:
        if scale not in self.SCALES:
            raise CnnvizError(f"unknown step scale {scale!r}: choose from {', '.join(self.SCALES)}")
        super().__init__(params, {"lr": lr, "scale": scale})

    @staticmethod
    def direction(grad: torch.Tensor, scale: str) -> torch.Tensor:
        """The unit step for ``grad`` under ``scale`` (per image along the first axis)."""
        if scale == "sign":
            return grad.sign()
        shape = (-1, *([1] * (grad.dim() - 1)))
        flat = grad.flatten(1)
        size = flat.abs().mean(1) if scale == "mean_abs" else flat.norm(dim=1)
        return grad / size.clamp(min=1e-12).view(shape)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(self.direction(p.grad, group["scale"]), alpha=-group["lr"])
        return loss


class NormalizedAscent(SteepestAscent):
    """DeepDream's ascent: :class:`SteepestAscent` with the ``mean_abs`` scale."""

    def __init__(self, params: object, lr: float = 0.01) -> None:
        super().__init__(params, lr, "mean_abs")


def make_optimizer(name: str, parameters: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    """``adam``, ``sgd`` (momentum 0.9), ``lbfgs``, ``normalized`` (DeepDream's ascent), or the
    attacks' steepest steps ``sign`` (L-infinity: ``lr * sign(grad)``) and ``l2`` (``lr * grad / ||grad||``)."""
    if name == "adam":
        return torch.optim.Adam(parameters, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=0.9)
    if name == "lbfgs":
        return torch.optim.LBFGS(parameters, lr=lr, max_iter=1, history_size=20, line_search_fn="strong_wolfe")
    if name == "normalized":
        return NormalizedAscent(parameters, lr=lr)
    if name in ("sign", "l2"):
        return SteepestAscent(parameters, lr=lr, scale=name)
    raise CnnvizError(f"unknown optimizer {name!r}: choose from {', '.join(OPTIMIZERS)}")


@dataclass
class Result:
    """What :func:`optimize` returns.

    Attributes:
        images: final images ``(B, C, H, W)`` in [0, 1], on the model's device.
        history: objective per step and image ``(steps, B)``.
        snapshots: images every ``snapshot_every`` steps (on the CPU), for animations.
        done_at: first step at which ``until`` held for each image (-1: never).
    """

    images: torch.Tensor
    history: torch.Tensor
    snapshots: list[torch.Tensor] = field(default_factory=list)
    done_at: torch.Tensor | None = None


def optimize(
    handle: ModelHandle,
    image: nn.Module,
    objective: Objective,
    *,
    steps: int = 256,
    lr: float = 0.05,
    optimizer: str = "adam",
    transforms: Transform | None = None,
    every_step: Callable[[nn.Module, int], None] | None = None,
    until: Callable[[Context], torch.Tensor] | None = None,
    refill: Callable[[torch.Tensor], torch.Tensor] | None = None,
    tile: int | None = None,
    snapshot_every: int = 0,
    seed: int | None = 0,
    progress: bool = True,
    desc: str = "optimizing",
) -> Result:
    """Maximize ``objective`` over the parameters of ``image``; the model is left untouched.

    Args:
        image: a parameterization (``param.PixelImage``, ``param.FourierImage``) whose
            ``forward()`` gives images in [0, 1] and whose ``project()`` runs after each step.
        objective: what to maximize, one score per image.
        steps: optimizer steps.
        lr: learning rate.
        optimizer: ``adam``, ``sgd``, ``lbfgs``, ``normalized``, ``sign`` or ``l2``
            (see :func:`make_optimizer`).
        transforms: random transformation applied to the images before the model.
        every_step: called as ``every_step(image, step)`` after the projection
            (e.g. a blur every few steps, or an attack's epsilon-ball projection).
        until: per-image stop test on the context; stops when all images pass.
        refill: with ``until``, keeps the batch full instead: called with the rows that are done
            (passed ``until``, or failed it after ``steps`` updates) as a CPU bool mask, it may
            put new work into them (new pixels in ``image``, new targets in the objective) and
            returns the mask of rows it restarted. A restarted row counts its ``steps`` afresh and
            its optimizer moments are zeroed; the run ends when no row has work left, so rows never
            idle while a slow one finishes. ``steps`` is then per row.
        tile: compute the gradient over square tiles of this side, so large images fit
            in memory (activations of one tile at a time).
        snapshot_every: keep a copy of the images every N steps.
        seed: seeds the random transforms (the caller's RNG state is restored).
    """
    if steps < 1:
        raise CnnvizError(f"steps must be at least 1, got {steps}")
    if tile is not None and optimizer == "lbfgs":
        raise CnnvizError("tiled gradients do not work with L-BFGS: use adam, sgd or normalized")
    if refill is not None and until is None:
        raise CnnvizError("refill needs until: the test that says when a row is done")
    stepper = _Stepper(handle, image, objective, transforms, make_optimizer(optimizer, list(image.parameters()), lr),
                       tile)
    rows = _Rows(next(image.parameters()).shape[0], steps, until, refill, stepper.opt)
    history: list[torch.Tensor] = []
    snapshots: list[torch.Tensor] = []
    devices = [handle.device] if handle.device.type == "cuda" else []
    with preserve(handle), torch.random.fork_rng(devices=devices, enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        bar = tqdm(total=None if refill else steps, desc=desc, disable=not progress or refill is not None,
                   leave=False)
        step = 0
        watchers = step_watchers()
        while rows.working(step):
            stepper.step()
            if every_step is not None:
                every_step(image, step)
            for watcher in watchers:
                watcher(image, step)
            history.append(stepper.values.cpu())
            if snapshot_every and step % snapshot_every == 0:
                snapshots.append(image().detach().cpu())
            rows.update(stepper.context, step)
            bar.update()
            step += 1
        bar.close()
    with torch.no_grad():
        final = image().detach()
    return Result(final, torch.stack(history), snapshots, rows.done_at)


class _Stepper:
    """One optimizer step: the images through the transforms and the model (as far as the objective needs),
    the objective per image, its gradient (whole or tile by tile), the update and the projection."""

    def __init__(self, handle: ModelHandle, image: nn.Module, objective: Objective, transforms: Transform | None,
                 opt: torch.optim.Optimizer, tile: int | None) -> None:
        self.handle, self.image, self.objective, self.transforms, self.opt, self.tile = (
            handle, image, objective, transforms, opt, tile)
        self.modules = {name: handle.layer(name) for name in objective.layers}
        self.values = torch.zeros(0)
        self.context: Context | None = None

    def evaluate(self, images: torch.Tensor) -> tuple[torch.Tensor, Context]:
        inputs = self.transforms(images) if self.transforms is not None else images
        with record(self.modules, detach=False) as recordings:
            logits = run_until(self.handle, inputs, [] if self.objective.uses_logits else self.modules.values())
        context = Context(images, inputs, logits, {name: r.output for name, r in recordings.items()})
        return self.objective(context), context

    def closure(self) -> torch.Tensor:
        self.opt.zero_grad(set_to_none=True)
        if self.tile is None:
            values, self.context = self.evaluate(self.image())
            (-values.sum()).backward()
        else:
            values = tiled_backward(self.image, self.evaluate, self.tile)
        self.values = values.detach()
        return -self.values.sum()

    def step(self) -> None:
        self.opt.step(self.closure)
        self.image.project()


class _Rows:
    """When the run stops. Without ``until``: after ``steps``. With it: when every row has passed (``done_at``
    keeps each row's first passing step). With ``refill``: rows that pass, or fail after ``steps`` updates of
    their own, are handed to ``refill``; the rows it restarts count afresh, and the run ends when none works."""

    def __init__(self, count: int, steps: int, until: Callable[[Context], torch.Tensor] | None,
                 refill: Callable[[torch.Tensor], torch.Tensor] | None, opt: torch.optim.Optimizer) -> None:
        self.steps, self.until, self.refill, self.opt = steps, until, refill, opt
        self.age = torch.zeros(count, dtype=torch.long)
        self.active = torch.ones(count, dtype=torch.bool)
        self.done_at: torch.Tensor | None = None
        self.finished = False

    def working(self, step: int) -> bool:
        if self.refill is not None:
            return bool(self.active.any())
        return step < self.steps and not self.finished

    def update(self, context: Context | None, step: int) -> None:
        if self.until is None:
            return
        if self.refill is None:
            if context is None:
                return
            passed = self.until(context).detach().cpu()
            if self.done_at is None:
                self.done_at = torch.full_like(passed, -1, dtype=torch.long)
            self.done_at[(self.done_at < 0) & passed] = step
            self.finished = bool((self.done_at >= 0).all())
            return
        self.age += 1
        passed = (self.until(context).detach().cpu() if context is not None
                  else torch.zeros_like(self.active))
        finished = self.active & (passed | (self.age > self.steps))  # after ``steps`` updates: the last tried
        if bool(finished.any()):
            restarted = self.refill(finished).cpu() & finished
            self.active &= ~finished
            self.active |= restarted
            self.age[restarted] = 0
            _reset_rows(self.opt, restarted)


def _reset_rows(opt: torch.optim.Optimizer, rows: torch.Tensor) -> None:
    """Zero the per-pixel optimizer state (Adam's moments, momentum) of the given rows."""
    if not bool(rows.any()):
        return
    for param, state in opt.state.items():
        for value in state.values():
            if isinstance(value, torch.Tensor) and value.shape == param.shape:
                value[rows.to(value.device)] = 0


def tiled_backward(image: nn.Module, evaluate: Callable[[torch.Tensor], tuple[torch.Tensor, Context]],
                   tile: int) -> torch.Tensor:
    """Accumulate the objective's gradient tile by tile; returns the summed objective per image.

    The parameterization runs once; each tile of its output goes through the
    model separately and its gradient flows back into the shared image.
    """
    images = image()
    held = images.detach().requires_grad_(True)
    height, width = held.shape[-2:]
    total = torch.zeros(held.shape[0], device=held.device)
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            values, _ = evaluate(held[:, :, top:top + tile, left:left + tile])
            (-values.sum()).backward()
            total += values.detach()
    images.backward(held.grad)
    return total

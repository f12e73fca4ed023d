"""Adversarial attacks on real images: FGSM and PGD, L-infinity and L2, untargeted and targeted.

Attacks work in [0, 1] pixel space: the handle normalizes inside its forward,
so the epsilon-ball and the clamp to valid pixels are honest. Both are presets
over the one optimization engine (:func:`interpret.optimize.engine.optimize`): raw
pixels, the objective (cross-entropy of the clean prediction to push up, or
the log-probability of the target class), the steepest-ascent optimizer of
the norm (``sign`` for L-infinity, ``l2``), and the projection into the
epsilon-ball as the engine's ``every_step`` hook.

Computing and reporting are apart: :func:`pgd` / :func:`fgsm` return the
adversarial images; :func:`attack_report` measures classes, confidences and
perturbation norms; :func:`interpret.views.sheets.attack_panel` draws them.

Example:
    >>> from cnnviz import zoo
    >>> from cnnviz.interpret.attack.adversarial import attack_report, pgd
    >>> handle = zoo.load("efficientnet_lite0", device="cpu")
    >>> images = handle.prepare([zoo.load_image("coffee")])
    >>> adversarial = pgd(handle, images, eps=4 / 255, steps=10, progress=False)
    >>> report = attack_report(handle, images, adversarial)
    >>> bool(report.success.all()), float(report.linf.max()) <= 4 / 255 + 1e-6
    (True, True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from cnnviz.interpret.core.batching import auto_batch_size, chunks
from cnnviz.interpret.core.registry import method
from cnnviz.interpret.core.targets import Target, is_score_fn, require_classifier, target_indices
from cnnviz.interpret.optimize import engine, objectives, param
from cnnviz.interpret.optimize.row_queue import RowQueue
from cnnviz.zoo.core import CnnvizError, PositiveFloat, PositiveInt, preserve
from cnnviz.zoo.handle import ModelHandle, as_handle

Norm = Literal["linf", "l2"]
NORMS = ("linf", "l2")
STEP_OPTIMIZER = {"linf": "sign", "l2": "l2"}  # the steepest-ascent step of each norm (engine optimizers)


def _per_image(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.view(-1, *([1] * (like.dim() - 1)))


def perturbation_norms(images: torch.Tensor, adversarial: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """L-infinity and L2 norms of ``adversarial - images``, one each per image ``(B,)``."""
    delta = (adversarial - images).flatten(1)
    return delta.abs().amax(1), delta.norm(dim=1)


def project_ball(images: torch.Tensor, delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Pixels ``images + delta`` with ``delta`` pulled into the ``eps``-ball of ``norm``, then clamped to [0, 1].

    The clamp moves each pixel towards its clean value, so it never leaves the ball.
    """
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        length = delta.flatten(1).norm(dim=1)
        delta = delta * _per_image((eps / length.clamp(min=1e-12)).clamp(max=1.0), delta)
    return (images + delta).clamp(0.0, 1.0)


def ball_projection(images: torch.Tensor, eps: float, norm: str) -> Callable[[nn.Module, int], None]:
    """An engine ``every_step`` hook that keeps a :class:`~interpret.optimize.param.PixelImage` in the ball around ``images``."""
    def hook(image: nn.Module, step: int) -> None:
        with torch.no_grad():
            image.pixels.copy_(project_ball(images, image.pixels - images, eps, norm))
    return hook


def random_point(images: torch.Tensor, eps: float, norm: str, generator: torch.Generator) -> torch.Tensor:
    """A uniform point in the L-infinity ball, or a random direction at a uniform radius in the L2 ball."""
    if norm == "linf":
        delta = (torch.rand(images.shape, generator=generator, device=images.device) * 2 - 1) * eps
    else:
        direction = torch.randn(images.shape, generator=generator, device=images.device)
        direction = direction / _per_image(direction.flatten(1).norm(dim=1).clamp(min=1e-12), direction)
        radius = torch.rand(images.shape[0], generator=generator, device=images.device) * eps
        delta = direction * _per_image(radius, direction)
    return project_ball(images, delta, eps, norm)


def attack_objective(labels: torch.Tensor, targeted: bool) -> objectives.Objective:
    """Targeted: the target's log-probability; untargeted: minus the clean class's (its cross-entropy)."""
    return objectives.class_log_prob(labels) if targeted else -objectives.class_log_prob(labels)


def _check(eps: float, norm: str, images: torch.Tensor) -> None:
    """The budget against the norm's largest useful value (signature ranges are checked by the registry)."""
    if norm not in NORMS:
        raise CnnvizError(f"unknown norm {norm!r}: use linf or l2")
    if norm == "linf" and eps >= 1:
        raise CnnvizError(f"an L-infinity eps of {eps} allows any image: pixels are in [0, 1], use e.g. 8/255")
    diameter = images[0].numel() ** 0.5  # the L2 distance between an all-black and an all-white image
    if norm == "l2" and eps >= diameter:
        raise CnnvizError(f"an L2 eps of {eps} allows any image: {tuple(images.shape[1:])} pixels in [0, 1] are at "
                          f"most {diameter:.1f} apart, use e.g. 0.5 to 3")


def _labels(handle: ModelHandle, images: torch.Tensor, target: Target) -> tuple[torch.Tensor, bool]:
    """Per-image classes to reach (targeted) or to leave (untargeted: the clean prediction)."""
    require_classifier(handle, "an attack")
    if is_score_fn(target):
        raise CnnvizError("an attack target is a class index or name (or one per image), not a callable")
    with torch.no_grad():
        logits = handle(images)
    return target_indices(handle, target, logits), target is not None


@method("pgd", "adversarial", "projected gradient descent attack (iterative FGSM with random start), L-inf or L2", order=150)
def pgd(handle: ModelHandle, images: torch.Tensor, target: Target = None, *, eps: PositiveFloat = 4 / 255,
        norm: Norm = "linf", steps: PositiveInt = 10, alpha: PositiveFloat | None = None, random_start: bool = True,
        batch_size: PositiveInt | None = None, seed: int = 0, stop_on_success: bool = False,
        progress: bool = True) -> torch.Tensor:
    """Adversarial images within ``eps`` of ``images`` (Madry et al. 2018).

    Args:
        images: clean images ``(B, C, H, W)`` in [0, 1].
        target: None for untargeted (leave each image's predicted class), or a class index
            or name (one, or one per image) to reach.
        eps: radius of the perturbation ball in [0, 1] pixel units (4/255 = 0.0157).
        norm: ``linf`` (every pixel moves at most eps) or ``l2`` (the whole perturbation's length).
        steps: gradient steps (1 with alpha = eps and no random start is FGSM).
        alpha: step length (default: 2.5 * eps / steps, so the ball can be crossed and walked back).
        random_start: start from a random point of the ball instead of the clean image.
        batch_size: images per optimization batch (default: what fits the device).
        seed: seeds the random start.
        stop_on_success: stop each image at the first step at which the attack succeeds (the
            prediction leaves the clean class, or is the target) and return that image; meanwhile the
            next images take the freed rows of the batch, so no row idles. Images that never succeed
            get all ``steps`` and come out as without it.

    Returns:
        Adversarial images ``(B, C, H, W)`` in [0, 1], each within ``eps`` of its clean image.
    """
    if stop_on_success:
        return _attack_until_success(handle, images, target, eps, norm, steps, alpha, random_start, batch_size,
                                     seed, progress)
    return _attack(handle, images, target, eps, norm, steps, alpha, random_start, batch_size, seed, progress)


def _setup(handle: ModelHandle, images: torch.Tensor | None, target: Target, eps: float, norm: str, steps: int,
           alpha: float | None, random_start: bool, seed: int) -> tuple[float, torch.Tensor, bool, torch.Tensor]:
    """The checked budget, the step length, the labels to leave or reach, and the starting points."""
    if images is None:
        raise CnnvizError("an attack needs images: give the photos to perturb")
    _check(eps, norm, images)
    alpha = alpha if alpha is not None else 2.5 * eps / steps
    labels, targeted = _labels(handle, images, target)
    generator = torch.Generator(device=images.device).manual_seed(seed)
    starts = random_point(images, eps, norm, generator) if random_start else images
    return alpha, labels, targeted, starts


def _attack(handle: ModelHandle, images: torch.Tensor | None, target: Target, eps: float, norm: str, steps: int,
            alpha: float | None, random_start: bool, batch_size: int | None, seed: int,
            progress: bool) -> torch.Tensor:
    alpha, labels, targeted, starts = _setup(handle, images, target, eps, norm, steps, alpha, random_start, seed)
    size = batch_size or auto_batch_size(handle, backward=True)
    out = torch.empty_like(images)
    for part in chunks(images.shape[0], size, desc="attacking" if progress else None):
        clean = images[part]
        result = engine.optimize(handle, param.PixelImage(starts[part]), attack_objective(labels[part], targeted),
                                 steps=steps, lr=alpha, optimizer=STEP_OPTIMIZER[norm],
                                 every_step=ball_projection(clean, eps, norm), seed=None, progress=progress,
                                 desc=f"pgd {norm}")
        out[part] = result.images
    return out


def _attack_until_success(handle: ModelHandle, images: torch.Tensor | None, target: Target, eps: float, norm: str,
                          steps: int, alpha: float | None, random_start: bool, batch_size: int | None, seed: int,
                          progress: bool) -> torch.Tensor:
    """PGD where each image stops at its first success, through one refilled batch (a :class:`RowQueue`)."""
    alpha, labels, targeted, starts = _setup(handle, images, target, eps, norm, steps, alpha, random_start, seed)
    rows = min(batch_size or auto_batch_size(handle, backward=True), images.shape[0])
    out = torch.empty_like(images)
    clean = images[:rows].clone()  # the projection and the objective read these rows as they change job
    wanted = labels[:rows].clone()
    pixels = param.SnapshotPixels(starts[:rows])

    def load(row: int, job: int) -> None:
        clean[row], wanted[row] = images[job], labels[job]
        with torch.no_grad():
            pixels.pixels[row] = starts[job]

    def succeeded(context: objectives.Context) -> torch.Tensor:
        predicted = context.logits.detach().argmax(-1)
        return predicted == wanted if targeted else predicted != wanted

    def keep(done: torch.Tensor, jobs: torch.Tensor, context: objectives.Context) -> None:
        out[jobs.to(out.device)] = context.images.detach()[done.to(out.device)]

    queue = RowQueue(images.shape[0], rows, load=load, passed=succeeded, keep=keep, desc=f"pgd {norm}",
                     progress=progress)
    queue.start()
    try:
        engine.optimize(handle, pixels, attack_objective(wanted, targeted), steps=steps, lr=alpha,
                        optimizer=STEP_OPTIMIZER[norm], every_step=ball_projection(clean, eps, norm),
                        until=queue.until, refill=queue.refill, seed=None, progress=False)
    finally:
        queue.close()
    return out


@method("fgsm", "adversarial", "fast gradient sign method: one step of length eps (L-inf) or L2 gradient step", order=151)
def fgsm(handle: ModelHandle, images: torch.Tensor, target: Target = None, *, eps: PositiveFloat = 4 / 255,
         norm: Norm = "linf", batch_size: PositiveInt | None = None) -> torch.Tensor:
    """One step ``x + eps * sign(grad)`` (Goodfellow et al. 2015), or ``x + eps * grad / ||grad||`` for L2.

    Args:
        images: clean images ``(B, C, H, W)`` in [0, 1].
        target: None for untargeted (step up the clean class's loss), or a class to step towards.
        eps: step length and ball radius in [0, 1] pixel units.
        norm: ``linf`` (sign step) or ``l2`` (normalized gradient step).
        batch_size: images per batch (default: what fits the device).

    Returns:
        Adversarial images ``(B, C, H, W)`` in [0, 1].
    """
    return _attack(handle, images, target, eps, norm, 1, eps, False, batch_size, 0, False)


@dataclass
class AttackReport:
    """What an attack did, per image (all tensors ``(B,)`` on the CPU).

    Attributes:
        original, original_confidence: clean predicted class and its probability.
        adversarial, adversarial_confidence: predicted class on the adversarial image and its probability.
        target, target_confidence: the targeted class and its probability on the adversarial
            image (None for untargeted attacks).
        linf, l2: perturbation norms in [0, 1] pixel units.
        success: untargeted: the prediction changed; targeted: it is the target.
    """

    original: torch.Tensor
    original_confidence: torch.Tensor
    adversarial: torch.Tensor
    adversarial_confidence: torch.Tensor
    linf: torch.Tensor
    l2: torch.Tensor
    success: torch.Tensor
    target: torch.Tensor | None = None
    target_confidence: torch.Tensor | None = None

    @property
    def success_rate(self) -> float:
        """Fraction of images the attack succeeded on."""
        return float(self.success.float().mean())


def attack_report(handle: ModelHandle, images: torch.Tensor, adversarial: torch.Tensor,
                  target: Target = None) -> AttackReport:
    """Classes, confidences, norms and success of an attack (``target`` as given to the attack)."""
    handle = as_handle(handle)
    if images.shape != adversarial.shape:
        raise CnnvizError(f"clean {tuple(images.shape)} and adversarial {tuple(adversarial.shape)} shapes differ")
    require_classifier(handle, "an attack report")
    with torch.no_grad(), preserve(handle):
        clean = handle(images.to(handle.device)).softmax(-1).cpu()
        attacked = handle(adversarial.to(handle.device)).softmax(-1).cpu()
    original, new = clean.argmax(-1), attacked.argmax(-1)
    linf, l2 = perturbation_norms(images.cpu(), adversarial.cpu())
    targets = None if target is None else target_indices(handle, target, clean)
    success = new != original if targets is None else new == targets
    rows = torch.arange(len(original))
    return AttackReport(original, clean[rows, original], new, attacked[rows, new], linf, l2, success, targets,
                        None if targets is None else attacked[rows, targets])


def amplified_difference(images: torch.Tensor, adversarial: torch.Tensor) -> torch.Tensor:
    """``adversarial - images`` scaled so each image's largest |change| spans gray to black or white."""
    delta = adversarial - images
    top = _per_image(delta.flatten(1).abs().amax(1).clamp(min=1e-12), delta)
    return (0.5 + 0.5 * delta / top).clamp(0, 1)

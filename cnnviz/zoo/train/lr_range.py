"""Leslie Smith's LR range test: pick a learning rate before training."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from cnnviz.zoo.core.errors import CnnvizError
from cnnviz.zoo.data.datasets import NO_AUGMENT, Splits, batches
from cnnviz.zoo.handle.handle import ModelHandle
from cnnviz.zoo.train.loop import (TrainConfig, autocast, classifier_loss, epoch_generator, make_optimizer,
                                   seed_everything)


@dataclass(frozen=True)
class LRRange:
    """The result of an LR range test.

    Attributes:
        lrs: the learning rate of each step (growing geometrically).
        losses: the training loss at each step.
        smoothed: ``losses`` exponentially smoothed (what to read the curve by).
        suggestion: a good (peak) learning rate: a tenth of the rate where the
            smoothed loss was lowest, where it still falls steadily.
    """

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestion: float

    @property
    def best_lr(self) -> float:
        """The rate where the smoothed loss was lowest."""
        return self.lrs[min(range(len(self.smoothed)), key=self.smoothed.__getitem__)]


def lr_range_test(handle: ModelHandle, splits: Splits, config: TrainConfig, *, start_lr: float = 1e-6,
                  end_lr: float = 1.0, steps: int = 100, smoothing: float = 0.9, diverge: float = 4.0,
                  progress: bool = True) -> LRRange:
    """Leslie Smith's LR range test: train a copy, raising the rate geometrically each step.

    The loss first barely moves (rate too small), then falls fast, then
    explodes (too large). The run stops early once the smoothed loss exceeds
    ``diverge`` times its minimum. The handle itself is not changed.

    Example:
        >>> found = lr_range_test(handle, splits, TrainConfig(optimizer="adamw"), steps=60)  # doctest: +SKIP
        >>> found.suggestion  # doctest: +SKIP
        0.0031
    """
    config.validate()
    if not 0 < start_lr < end_lr:
        raise CnnvizError(f"the LR range must satisfy 0 < start < end, got {start_lr} .. {end_lr}")
    if steps < 5:
        raise CnnvizError(f"an LR range test needs at least 5 steps, got {steps}")
    seed_everything(config.seed)
    probe = copy.deepcopy(handle).train()
    device = probe.device
    optimizer = make_optimizer(probe.model, config)
    for group in optimizer.param_groups:
        group["lr"] = start_lr
    factor = (end_lr / start_lr) ** (1.0 / (steps - 1))
    data = splits.train.to(device)
    augment = splits.augment if config.augment else NO_AUGMENT
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    average, lowest = 0.0, math.inf
    generator = epoch_generator(config.seed, 0)
    bar = tqdm(total=steps, desc="LR range test", disable=not progress, unit="step")

    def endless() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            yield from batches(data, config.batch_size, shuffle=True, generator=generator, augment=augment,
                               drop_last=True)

    use_amp = config.amp and device.type == "cuda"
    for step, (images, labels) in zip(range(steps), endless()):
        lr = start_lr * factor ** step
        for group in optimizer.param_groups:
            group["lr"] = lr
        with autocast(device, use_amp):
            loss = classifier_loss(probe(images), labels, config)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        value = float(loss.detach())
        if not math.isfinite(value):
            break
        average = smoothing * average + (1 - smoothing) * value
        debiased = average / (1 - smoothing ** (step + 1))  # early averages are biased towards 0
        lrs.append(lr)
        losses.append(value)
        smoothed.append(debiased)
        lowest = min(lowest, debiased)
        bar.update(1)
        if debiased > diverge * lowest:
            break
    bar.close()
    if len(lrs) < 3:
        raise CnnvizError(f"the loss diverged at once (lr {start_lr * factor ** len(lrs):.2g}): lower the start rate")
    best = min(range(len(smoothed)), key=smoothed.__getitem__)
    return LRRange(lrs, losses, smoothed, suggestion=lrs[best] / 10)

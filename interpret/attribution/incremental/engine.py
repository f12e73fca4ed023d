"""The incremental forward pass: logits of images changed inside one box each, from the clean activations.

An occluded image differs from its clean image only inside the window, so
layer by layer only that window's growing footprint differs. The engine
traces the network once with ``torch.fx``, runs the clean images through the
graph and keeps every node's output, then, for a batch of changed rows, walks
the graph carrying only each row's changed box (:mod:`.patch`) through the
per-operation rules (:mod:`.rules`), on a graph folded for inference (:mod:`.fusion`): many rows' boxes go through a layer's own
weights in one batched call. Where a box grows to the whole map, and at the
head (global pooling, classifier), the layers run in full. This is Krypton's
incremental view maintenance (Nakandala, Kumar & Papakonstantinou, SIGMOD 2019).

The approximate mode (``cap``) follows Krypton's projective-field threshold: a
box is never allowed to grow past ``cap`` of its map's side; what changes
outside it is ignored.

Example:
    >>> import torchvision
    >>> handle = as_handle(torchvision.models.resnet18(num_classes=3).eval())
    >>> images = torch.rand(1, 3, 32, 32)
    >>> engine = IncrementalForward.build(handle, images)
    >>> changed = images.clone(); changed[:, :, 4:12, 8:16] = 0.5
    >>> rows = engine(torch.tensor([0]), torch.tensor([4]), torch.tensor([8]), torch.full((1, 3, 8, 8), 0.5))
    >>> torch.allclose(rows, handle(changed), atol=1e-5)
    True
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.fx
from torch import nn
from torch.fx.node import map_arg

from interpret.attribution.incremental.graphs import engine_graph
from interpret.attribution.incremental.patch import Patch, span
from interpret.attribution.incremental.rules import apply, call
from zoo.handle import PRECISIONS, ModelHandle, as_handle
from zoo.outputs import select_logits


class IncrementalForward:
    """Logits of rows ``images[image[k]]`` with the box at ``(top[k], left[k])`` replaced by ``values[k]``.

    Build with :meth:`build`; calling it never changes the model (no hooks, no state; the graph shares
    the model's parameters).

    Args:
        handle: the model (its normalization, channels-last and precision settings are followed).
        graph: the graph to walk, ``handle.model``'s from :func:`~.graphs.engine_graph` (folded in fp32 only:
            in bf16 folded weights would round elsewhere than the full pass).
        images: ``(B, C, H, W)`` clean images in [0, 1].
        cap: approximate mode: the largest changed box as a share of each map's side (None: exact).
    """

    def __init__(self, handle: ModelHandle, graph: torch.fx.GraphModule, images: torch.Tensor,
                 cap: float | None = None) -> None:
        self.handle, self.cap = handle, cap
        self.boxes: dict[str, tuple[int, ...]] = {}  # per node: the last call's box shape (K, C, h, w), if boxed
        self.graph = graph
        with torch.no_grad(), self._precision():
            self.clean_logits = self._run_clean(images)

    def _run_clean(self, images: torch.Tensor) -> torch.Tensor:
        self.modules = dict(self.graph.named_modules())
        self.clean: dict[str, Any] = {}
        return self._walk(self._normalize(images), None)

    @classmethod
    def build(cls, model: nn.Module, images: torch.Tensor, cap: float | None = None) -> IncrementalForward:
        """The engine for ``model`` on ``images``; raises ``ValueError`` saying why where it cannot follow."""
        handle = as_handle(model)
        graph, reason = engine_graph(handle.model, folded=handle.precision == "fp32")
        if graph is None:
            raise ValueError(reason)
        return cls(handle, graph, images, cap)

    def _precision(self) -> contextlib.AbstractContextManager:
        if self.handle.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.handle.device.type, dtype=PRECISIONS[self.handle.precision])

    def _normalize(self, images: torch.Tensor) -> torch.Tensor:
        normalized = (images - self.handle.mean) / self.handle.std
        if self.handle.channels_last and normalized.device.type == "cpu":
            normalized = normalized.contiguous(memory_format=torch.channels_last)
        return normalized

    def __call__(self, image: torch.Tensor, top: torch.Tensor, left: torch.Tensor,
                 values: torch.Tensor) -> torch.Tensor:
        """``(K, classes)`` logits of the changed rows; ``values`` is ``(K, C, h, w)`` in [0, 1]."""
        values = (values - self.handle.mean) / self.handle.std
        clean = self.clean[self._input_name]
        with torch.no_grad(), self._precision():
            return self._walk(None, Patch(values.to(clean.dtype), top, left, image, clean))

    def _walk(self, clean_input: torch.Tensor | None, patch: Patch | None) -> torch.Tensor:
        """Run the graph: on the clean images (keeping every output), or on a patch (reading the kept ones)."""
        env: dict[str, Any] = {}
        for node in self.graph.graph.nodes:
            if node.op == "placeholder":
                self._input_name = node.name
                env[node.name] = clean_input if patch is None else patch
                if patch is None:
                    self.clean[node.name] = clean_input
            elif node.op == "get_attr":
                env[node.name] = _fetch(self.graph, node.target)
            elif node.op == "output":
                output = map_arg(node.args[0], lambda n: env[n.name])
                if isinstance(output, Patch):
                    output = output.full()
                logits = select_logits(output, self.handle.output)
                return logits.float() if self.handle.precision != "fp32" else logits
            else:
                args = map_arg(node.args, lambda n: env[n.name])
                kwargs = map_arg(node.kwargs, lambda n: env[n.name])
                target = self.modules[node.target] if node.op == "call_module" else node.target
                method = node.target if node.op == "call_method" else None
                if patch is None:
                    env[node.name] = call(target, method, args, kwargs)
                    self.clean[node.name] = _keep(env[node.name])
                else:
                    env[node.name] = apply(target, method, args, kwargs, self.clean[node.name], self.cap)
                    if isinstance(env[node.name], Patch):
                        self.boxes[node.name] = tuple(env[node.name].values.shape)
        raise ValueError("the traced graph has no output")


def _fetch(module: nn.Module, target: str) -> Any:
    value: Any = module
    for part in target.split("."):
        value = getattr(value, part)
    return value


def _keep(value: Any) -> Any:
    """A copy of a clean output, safe from later in-place operations of the network."""
    return value.clone() if isinstance(value, torch.Tensor) else value


def window_values(images: torch.Tensor, image: torch.Tensor, top: torch.Tensor, left: torch.Tensor,
                  height: int, width: int) -> torch.Tensor:
    """``(K, C, height, width)`` crops of ``images[image[k]]`` at ``(top[k], left[k])``."""
    rows, cols = span(top, height), span(left, width)
    return images[image[:, None, None], :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)

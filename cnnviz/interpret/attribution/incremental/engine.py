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
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx
from torch import nn
from torch.fx.node import map_arg

from cnnviz.interpret.attribution.incremental.graphs import engine_graph
from cnnviz.interpret.attribution.incremental.patch import Patch, span
from cnnviz.interpret.attribution.incremental.rules import apply, call
from cnnviz.interpret.core.batching import chunks
from cnnviz.zoo.handle import ModelHandle, PRECISIONS, as_handle, select_logits

# Rows per group once every changed box covers its map (the deep layers): small enough that a group's maps stay
# in the CPU's caches, large enough for the convolutions to fill both threads. efficientnet_lite0, 2 threads of an
# AMD EPYC, 32 rows a call: no groups 0.54 s, groups of 16 0.45 s, of 12 0.52 s, of 8 0.55 s at 169 windows;
# no groups 3.5 s, groups of 16 2.1 s at 729 windows.
TAIL_ROWS = 16


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
        self.plan = WalkPlan.of(graph.graph)
        self.tail_rows = TAIL_ROWS if images.device.type == "cpu" else None  # a GPU wants its rows together
        self.tail_from: int | None = None  # the node from which the last call ran in groups of rows, if it did
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
        """Run the graph: on the clean images (keeping every output), or on a patch (reading the kept ones).

        A patch's rows go through the graph together while any changed box is smaller than its map; from the
        first node after which every map still needed is full, they go on in groups of :data:`TAIL_ROWS` (on
        the CPU), so that the deep layers' maps stay in its caches."""
        env: dict[str, Any] = {}
        plan, self.tail_from = self.plan, None
        for index, node in enumerate(plan.nodes):
            if node.op == "placeholder":
                self._input_name = node.name
                env[node.name] = clean_input if patch is None else patch
                if patch is None:
                    self.clean[node.name] = clean_input
            elif node.op == "get_attr":
                env[node.name] = _fetch(self.graph, node.target)
            elif node.op == "output":
                return self._logits(node, env)
            elif patch is None:
                env[node.name] = call(*self._call_of(node, env))
                self.clean[node.name] = _keep(env[node.name])
            else:
                target, method, args, kwargs = self._call_of(node, env)
                env[node.name] = apply(target, method, args, kwargs, self.clean[node.name], self.cap)
                if isinstance(env[node.name], Patch):
                    self.boxes[node.name] = tuple(env[node.name].values.shape)
            if patch is not None and self.tail_rows is not None and patch.rows > self.tail_rows \
                    and plan.all_full_after(index, env):
                self.tail_from = index + 1
                return self._tail(index + 1, env, patch.rows)
        raise ValueError("the traced graph has no output")

    def _tail(self, start: int, env: dict[str, Any], rows: int) -> torch.Tensor:
        """The logits of the nodes from ``start`` on, whose inputs are all full maps, a group of rows at a time."""
        plan, logits = self.plan, []
        for group in chunks(rows, self.tail_rows or rows):  # near-equal groups: fewer shapes for oneDNN to build
            part = {name: env[name][group] if name in plan.row_valued else env[name]
                    for name in plan.live_after[start - 1]}
            for node in plan.nodes[start:]:
                if node.op == "output":
                    logits.append(self._logits(node, part))
                    break
                part[node.name] = _fetch(self.graph, node.target) if node.op == "get_attr" \
                    else call(*self._call_of(node, part))
        return torch.cat(logits)

    def _call_of(self, node: torch.fx.Node, env: dict[str, Any]) -> tuple[Any, str | None, Any, Any]:
        """What ``node`` calls and with which arguments, read from ``env``."""
        args = map_arg(node.args, lambda n: env[n.name])
        kwargs = map_arg(node.kwargs, lambda n: env[n.name])
        target = self.modules[node.target] if node.op == "call_module" else node.target
        return target, node.target if node.op == "call_method" else None, args, kwargs

    def _logits(self, node: torch.fx.Node, env: dict[str, Any]) -> torch.Tensor:
        output = map_arg(node.args[0], lambda n: env[n.name])
        if isinstance(output, Patch):
            output = output.full()
        logits = select_logits(output, self.handle.output)
        return logits.float() if self.handle.precision != "fp32" else logits


@dataclass(frozen=True)
class WalkPlan:
    """The graph's nodes in order, which outputs are still needed after each node, and which outputs have a
    row per image (the others are weights and constants)."""

    nodes: tuple[torch.fx.Node, ...]
    live_after: tuple[tuple[str, ...], ...]
    row_valued: frozenset[str]

    @classmethod
    def of(cls, graph: torch.fx.Graph) -> WalkPlan:
        nodes = tuple(graph.nodes)
        last_use = {inp.name: index for index, node in enumerate(nodes) for inp in node.all_input_nodes}
        live: dict[str, None] = {}
        live_after, row_valued = [], set()
        for index, node in enumerate(nodes):
            if node.op == "placeholder" or any(inp.name in row_valued for inp in node.all_input_nodes):
                row_valued.add(node.name)
            if node.name in last_use:
                live[node.name] = None
            for inp in node.all_input_nodes:
                if last_use[inp.name] == index:
                    live.pop(inp.name, None)
            live_after.append(tuple(live))
        return cls(nodes, tuple(live_after), frozenset(row_valued))

    def all_full_after(self, index: int, env: dict[str, Any]) -> bool:
        """Whether every row-valued output still needed after node ``index`` is a full map (no box left)."""
        needed = [name for name in self.live_after[index] if name in self.row_valued]
        return bool(needed) and all(isinstance(env[name], torch.Tensor) for name in needed)


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

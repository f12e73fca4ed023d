"""The engine's graph of a model: traced with ``torch.fx``, folded for inference, kept while the model stays the same.

Tracing efficientnet_lite0 and folding its graph costs about 0.1 s on 2 CPU
cores, a sixth of a 169-window occlusion job, so the graph is kept per model
(weakly: it goes with the model) and made again only when the model's weights
or buffers change, or its structure does (a module replaced, train/eval mode,
a module's settings): :mod:`interpret.core.fingerprint`. A refusal (a network
``torch.fx`` cannot trace) is kept the same way.

Example:
    >>> import torchvision
    >>> net = torchvision.models.resnet18(num_classes=3).eval()
    >>> kept = engine_graph(net, folded=True)[0]
    >>> kept is engine_graph(net, folded=True)[0]
    True
    >>> _ = net.fc.weight.data.mul_(2)
    >>> kept is engine_graph(net, folded=True)[0]
    False
"""

from __future__ import annotations

import threading
import weakref

import torch.fx
from torch import nn

from cnnviz.interpret.attribution.incremental.fusion import fold
from cnnviz.interpret.core.fingerprint import structure_fingerprint, weights_fingerprint

Graph = tuple[torch.fx.GraphModule | None, str]
_KEPT: weakref.WeakKeyDictionary[nn.Module, dict[bool, tuple[tuple[object, ...], Graph]]] = \
    weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def trace(model: nn.Module) -> Graph:
    """``model``'s ``torch.fx`` graph, or None and one line saying why the engine cannot follow it.

    Modules in training mode are no obstacle: the rules run them in full, on full rows, as the full pass does.
    """
    try:
        return torch.fx.symbolic_trace(model), ""
    except Exception as error:  # noqa: BLE001 - any tracing failure means: not this engine
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
        return None, f"torch.fx cannot trace {type(model).__name__} ({first_line})"


def engine_graph(model: nn.Module, folded: bool) -> Graph:
    """The graph the engine walks for ``model`` (:func:`~.fusion.fold`-ed when ``folded``), or None and why
    not; made once per model and state and kept. The model itself is never changed."""
    fingerprint = weights_fingerprint(model), structure_fingerprint(model)
    with _LOCK:
        kept = _KEPT.setdefault(model, {}).get(folded)
        if kept is not None and kept[0] == fingerprint:
            return kept[1]
    graph, reason = trace(model)
    if graph is not None and folded:
        graph = fold(graph)  # a fresh trace: folding it in place leaves the model as it is
    with _LOCK:
        _KEPT.setdefault(model, {})[folded] = fingerprint, (graph, reason)
    return graph, reason

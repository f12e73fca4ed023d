"""Incremental inference for forward-only perturbation work: recompute only what a patch changes.

Example:
    >>> from cnnviz.interpret.attribution.incremental import IncrementalForward, trace
    >>> import torchvision
    >>> trace(torchvision.models.resnet18().eval())[0] is not None
    True
"""

from cnnviz.interpret.attribution.incremental.choice import INCREMENTAL, Incremental, OcclusionRows
from cnnviz.interpret.attribution.incremental.engine import IncrementalForward, window_values
from cnnviz.interpret.attribution.incremental.graphs import engine_graph, trace
from cnnviz.interpret.attribution.incremental.patch import Patch

__all__ = ["INCREMENTAL", "Incremental", "IncrementalForward", "OcclusionRows", "Patch", "engine_graph", "trace",
           "window_values"]

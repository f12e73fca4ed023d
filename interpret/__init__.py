"""cnnviz interpretation methods: every method takes a zoo handle (or a plain
module), a batch of images in [0, 1] and a target, and returns tensors on the
model's device.

Example:
    >>> import zoo, interpret
    >>> handle = zoo.load("efficientnet_lite0", device="cpu")
    >>> images = handle.prepare([zoo.load_image("chelsea")])
    >>> rows = interpret.layer_table(handle)
"""

from __future__ import annotations

# Methods register on import; this order (the course's) is the order of listings.
from interpret.occlusion import occlusion  # isort: skip
from interpret.saliency import integrated_gradients, saliency, smoothgrad  # isort: skip
from interpret.guided import guided_backprop  # isort: skip
from interpret.cam import gradcam, guided_gradcam  # isort: skip
from interpret.guard import preserve
from interpret.hooks import forward_hooks, hook_counts, record
from interpret.registry import Method, get_method, method, methods
from interpret.summary import LayerRow, layer_table, textbook_params, textbook_total
from interpret.targets import class_index, target_indices, target_scores

__all__ = [
    "gradcam", "guided_backprop", "guided_gradcam", "integrated_gradients", "occlusion", "saliency", "smoothgrad",
    "LayerRow", "Method", "class_index", "forward_hooks", "get_method", "hook_counts", "layer_table", "method",
    "methods", "preserve", "record", "target_indices", "target_scores", "textbook_params", "textbook_total",
]

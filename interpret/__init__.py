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
from interpret.cams import (ablationcam, eigencam, eigengradcam, fem, finercam, fullgrad,  # isort: skip
                            gradcam_elementwise, gradcam_plusplus, hirescam, kpcacam, layercam, scorecam,
                            shapleycam, xgradcam)
from interpret.rise import rise  # isort: skip
from interpret.extremal import extremal  # isort: skip
import interpret.captum_methods  # isort: skip  # registers captum's catalog as captum:Name
from interpret.actmax import actmax  # isort: skip
from interpret.inversion import inversion_scores, invert  # isort: skip
from interpret.deepdream import deepdream  # isort: skip
from interpret.style import style_transfer  # isort: skip
from interpret.adversarial import attack_report, fgsm, pgd  # isort: skip
from interpret.fooling import fool  # isort: skip
from interpret.feature_maps import channel_order, feature_maps, layer_output  # isort: skip
from interpret.atlas import Atlas, channel_examples, neuron_atlas, open_dataset
from interpret.filters import conv_layers, filters
from interpret.receptive_field import (Box, ReceptiveField, receptive_field, receptive_fields, unit_gradient,
                                       verify_receptive_field)
from interpret.guard import preserve
from interpret.hooks import forward_hooks, hook_counts, record
from interpret.registry import Method, get_method, method, methods
from interpret.summary import LayerRow, layer_table, textbook_params, textbook_total
from interpret.targets import class_index, target_indices, target_scores

__all__ = [
    "Atlas", "Box", "ReceptiveField", "channel_examples", "channel_order", "conv_layers", "feature_maps", "filters",
    "layer_output", "neuron_atlas", "open_dataset", "receptive_field", "receptive_fields", "unit_gradient",
    "verify_receptive_field",
    "ablationcam", "eigencam", "eigengradcam", "fem", "finercam", "fullgrad", "gradcam_elementwise",
    "gradcam_plusplus", "hirescam", "kpcacam", "layercam", "scorecam", "shapleycam", "xgradcam", "rise", "extremal",
    "gradcam", "guided_backprop", "guided_gradcam", "integrated_gradients", "occlusion", "saliency", "smoothgrad",
    "actmax", "attack_report", "deepdream", "fgsm", "fool", "inversion_scores", "invert", "pgd", "style_transfer",
    "LayerRow", "Method", "class_index", "forward_hooks", "get_method", "hook_counts", "layer_table", "method",
    "methods", "preserve", "record", "target_indices", "target_scores", "textbook_params", "textbook_total",
]

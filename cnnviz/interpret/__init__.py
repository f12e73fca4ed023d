"""cnnviz interpretation methods: every method takes a zoo handle (or a plain module), a batch of images in
[0, 1] and a target, and returns tensors on the model's device.

The package is a table of contents; each subpackage is one concern with a face that re-exports it:

- :mod:`interpret.core` — registry, targets, input gradients, batching, sharding, map utilities;
- :mod:`interpret.attribution` — occlusion, RISE, gradients, guided backprop, extremal, the CAM family, captum;
- :mod:`interpret.optimize` — the optimization engine and its presets (actmax, inversion, DeepDream, style);
- :mod:`interpret.attack` — FGSM/PGD and fooling images;
- :mod:`interpret.inside` — feature maps, filters, layer table, receptive fields, the neuron atlas, layer sheets;
- :mod:`interpret.evaluate` — faithfulness, randomization, ROAD, robustness, complexity, statistics;
- :mod:`interpret.audit` — a classifier over its data: predictions, strategies per class, concepts, shortcut flags
  (callable: ``interpret.audit(handle, data, workdir=...)``);
- :mod:`interpret.views` — drawing, a leaf nothing else here imports.

Every public name is also importable as ``interpret.NAME``.

Example:
    >>> from cnnviz import zoo, interpret
    >>> handle = zoo.load("efficientnet_lite0", device="cpu")
    >>> images = handle.prepare([zoo.load_image("chelsea")])
    >>> rows = interpret.layer_table(handle)
"""

from __future__ import annotations

from cnnviz.interpret import _moved, audit
from cnnviz.interpret.attack import attack_report, fgsm, fool, pgd
from cnnviz.interpret.attribution import (
    ConceptRelevance, ablationcam, concept_relevance, concepts, eigencam, eigengradcam, extremal, fem, finercam,
    fullgrad, gradcam, gradcam_elementwise, gradcam_plusplus, guided_backprop, guided_gradcam, hirescam,
    integrated_gradients, kpcacam, layer_relevance, layercam, lrp, occlusion, relevance_ranking, rise, saliency,
    scorecam, shapleycam, smoothgrad, xgradcam,
)
from cnnviz.interpret.core import (
                                   BoxScore,
                                   Method,
                                   OptionSpec,
                                   RegionScore,
                                   class_index,
                                   dense_target,
                                   detection_target,
                                   get_method,
                                   method,
                                   methods,
                                   region_target,
                                   target_indices,
                                   target_scores,
)
from cnnviz.interpret.inside import (
    Atlas, Box, ConceptScore, LayerRow, LayerSheet, layer_sheet, ReceptiveField, channel_examples, channel_order, conv_layers, feature_maps,
    filters, layer_output, layer_table, neuron_atlas, receptive_field, receptive_fields, tcav, textbook_params,
    textbook_total, unit_gradient, verify_receptive_field,
)
from cnnviz.interpret.evaluate import Explanation, explain_one
from cnnviz.interpret.inside import Dissection, UnitLabel, dissect
from cnnviz.interpret.optimize import actmax, deepdream, inversion_scores, invert, style_transfer
from cnnviz.zoo.core import forward_hooks, hook_counts, preserve, record
from cnnviz.zoo.data import open_dataset

_moved.install()  # old flat module paths (interpret.render, interpret.cams, ...) still import, with a warning

__all__ = [
    "Dissection", "UnitLabel", "dissect",
    "Atlas", "Box", "ReceptiveField", "channel_examples", "channel_order", "conv_layers", "feature_maps", "filters",
    "ConceptScore", "tcav", "LayerSheet", "layer_sheet",
    "layer_output", "neuron_atlas", "open_dataset", "receptive_field", "receptive_fields", "unit_gradient",
    "verify_receptive_field",
    "ablationcam", "eigencam", "eigengradcam", "fem", "finercam", "fullgrad", "gradcam_elementwise",
    "gradcam_plusplus", "hirescam", "kpcacam", "layercam", "scorecam", "shapleycam", "xgradcam", "rise", "extremal",
    "gradcam", "guided_backprop", "guided_gradcam", "integrated_gradients", "lrp", "ConceptRelevance", "concept_relevance", "concepts", "layer_relevance",
    "relevance_ranking", "occlusion", "saliency", "smoothgrad",
    "actmax", "attack_report", "deepdream", "fgsm", "fool", "inversion_scores", "invert", "pgd", "style_transfer",
    "LayerRow", "Method", "class_index", "forward_hooks", "get_method", "hook_counts", "layer_table", "method",
    "methods", "preserve", "record", "target_indices", "target_scores", "textbook_params", "textbook_total",
    "BoxScore", "RegionScore", "dense_target", "detection_target", "region_target",
    "Explanation", "explain_one", "OptionSpec", "audit",
]

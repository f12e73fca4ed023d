"""Inside the network: feature maps, filters, the layer table, the network up to a layer, receptive fields
(:mod:`.fields`), the neuron atlas (:mod:`.atlas`) and network dissection (:mod:`.dissection`)."""

from cnnviz.interpret.core.activations import layer_output
from cnnviz.interpret.inside.atlas import Atlas, ChannelExamples, TopK, channel_examples, neuron_atlas
from cnnviz.interpret.inside.channel_evidence import unit_evidence
from cnnviz.interpret.inside.concept_vectors import MIN_IMAGES, ConceptScore, tcav
from cnnviz.interpret.inside.dissection import dissect
from cnnviz.interpret.inside.feature_maps import channel_order, feature_maps
from cnnviz.interpret.inside.fields import (
                                     Box,
                                     LayerField,
                                     ReceptiveField,
                                     layer_field,
                                     receptive_field,
                                     receptive_fields,
                                     unit_gradient,
                                     verify_receptive_field,
)
from cnnviz.interpret.inside.filters import FILTER_MODES, conv_layers, conv_weight, filter_mode, filters
from cnnviz.interpret.inside.layer_sheet import STEPS as SHEET_STEPS
from cnnviz.interpret.inside.layer_sheet import (LayerSheet, UnitStats, layer_channels, layer_sheet, load_sheet,
                                                 stuck)
from cnnviz.interpret.inside.layer_table import LayerRow, layer_table, summary_lines, textbook_params, textbook_total
from cnnviz.interpret.inside.top_quantile import TopQuantile
from cnnviz.interpret.inside.unit_labels import Dissection, Threshold, UnitLabel, read_dissection
from cnnviz.interpret.inside.up_to_layer import layer_prefix, layer_runner

__all__ = [
    "Dissection", "Threshold", "TopQuantile", "UnitLabel", "dissect",
    "Atlas", "ChannelExamples", "TopK", "channel_examples", "neuron_atlas", "channel_order", "feature_maps",
    "layer_output", "Box", "LayerField", "ReceptiveField", "layer_field", "receptive_field", "receptive_fields",
    "unit_gradient", "verify_receptive_field", "FILTER_MODES", "conv_layers", "conv_weight", "filter_mode",
    "filters", "LayerRow", "layer_table", "summary_lines", "textbook_params", "textbook_total", "layer_prefix",
    "layer_runner", "unit_evidence", "MIN_IMAGES", "ConceptScore", "tcav", "LayerSheet", "UnitStats",
    "layer_channels", "layer_sheet", "load_sheet", "read_dissection", "SHEET_STEPS", "stuck",
]

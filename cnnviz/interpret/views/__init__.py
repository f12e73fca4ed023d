"""Drawing: tensors and numbers in, pictures out. :mod:`.pixels` holds the primitives (colormaps, overlays,
captions, grids), :mod:`.sheets` one function per result picture, :mod:`.charts` the matplotlib figures.

A leaf: nothing else in interpret imports it, and it computes no gradients.

Example:
    >>> import torch
    >>> from cnnviz.interpret.views import explanation_panel
    >>> explanation_panel(torch.rand(3, 32, 32), torch.rand(32, 32), "gradient").dtype
    dtype('uint8')
"""

from cnnviz.interpret.views import audit, charts, dense, microscope, pixels, sheets
from cnnviz.interpret.views.charts import FORMATS, Series, line_chart, to_array
from cnnviz.interpret.views.dense import (
    boxes_overlay,
    explained_caption,
    explained_overlay,
    region_overlay,
    segmentation_overlay,
)
from cnnviz.interpret.views.microscope import label_words, sheet_overview, unit_card, unit_words
from cnnviz.interpret.views.pixels import COLORMAPS, DEFAULT_COLORMAP, caption, colorize, hstack, overlay, to_uint8
from cnnviz.interpret.views.sheets import (
                                    Picture,
                                    atlas_overview,
                                    atlas_sheet,
                                    attack_captions,
                                    attack_panel,
                                    attribution_views,
                                    channel_sheet,
                                    concept_panel,
                                    detail_panel,
                                    explanation_panel,
                                    feature_map_grid,
                                    filter_grid,
                                    map_view,
                                    photo,
                                    picture,
                                    picture_grid,
                                    show,
                                    style_panel,
                                    training_report,
)

__all__ = [
    "audit", "charts", "dense", "pixels", "sheets", "FORMATS", "Series", "line_chart", "to_array", "COLORMAPS", "DEFAULT_COLORMAP",
    "boxes_overlay", "explained_caption", "explained_overlay", "region_overlay", "segmentation_overlay",
    "caption", "colorize", "hstack", "overlay", "to_uint8", "Picture", "atlas_overview", "atlas_sheet",
    "attack_captions", "attack_panel", "attribution_views", "channel_sheet", "concept_panel", "detail_panel", "explanation_panel",
    "feature_map_grid", "filter_grid", "map_view", "photo", "picture", "picture_grid", "show", "style_panel",
    "training_report", "microscope", "label_words", "sheet_overview", "unit_card", "unit_words",
]

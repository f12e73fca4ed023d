"""Deprecation shims for the flat layout: ``import cnnviz.interpret.render`` still works, with a warning naming
the new home (``cnnviz.interpret.views.pixels``), the way torchvision and timm keep moved modules importable.

Example:
    >>> import warnings, importlib
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     module = importlib.import_module("cnnviz.interpret.summary")
    >>> module.__name__, "cnnviz.interpret.inside.layer_table" in str(caught[0].message)
    ('cnnviz.interpret.inside.layer_table', True)
"""

from __future__ import annotations

from cnnviz.zoo.core import install_moved

MOVED = {
    "registry": "cnnviz.interpret.core.registry",
    "targets": "cnnviz.interpret.core.targets",
    "gradients": "cnnviz.interpret.core.gradients",
    "batching": "cnnviz.interpret.core.batching",
    "distributed": "cnnviz.interpret.core.distributed",
    "occlusion": "cnnviz.interpret.attribution.occlusion",
    "rise": "cnnviz.interpret.attribution.rise",
    "saliency": "cnnviz.interpret.attribution.saliency",
    "guided": "cnnviz.interpret.attribution.guided",
    "extremal": "cnnviz.interpret.attribution.extremal",
    "captum_methods": "cnnviz.interpret.attribution.captum_adapter",
    "cam_core": "cnnviz.interpret.attribution.cam.core",
    "cam": "cnnviz.interpret.attribution.cam.gradcam",
    "cams": "cnnviz.interpret.attribution.cam",
    "engine": "cnnviz.interpret.optimize.engine",
    "objectives": "cnnviz.interpret.optimize.objectives",
    "param": "cnnviz.interpret.optimize.param",
    "transforms": "cnnviz.interpret.optimize.transforms",
    "row_queue": "cnnviz.interpret.optimize.row_queue",
    "actmax": "cnnviz.interpret.optimize.actmax",
    "inversion": "cnnviz.interpret.optimize.inversion",
    "deepdream": "cnnviz.interpret.optimize.deepdream",
    "style": "cnnviz.interpret.optimize.style",
    "adversarial": "cnnviz.interpret.attack.adversarial",
    "fooling": "cnnviz.interpret.attack.fooling",
    "feature_maps": "cnnviz.interpret.inside.feature_maps",
    "filters": "cnnviz.interpret.inside.filters",
    "summary": "cnnviz.interpret.inside.layer_table",
    "prefix": "cnnviz.interpret.inside.up_to_layer",
    "receptive_field": "cnnviz.interpret.inside.fields.receptive_field",
    "field_types": "cnnviz.interpret.inside.fields.types",
    "field_probe": "cnnviz.interpret.inside.fields.probe",
    "geometry": "cnnviz.interpret.inside.fields.geometry",
    "atlas": "cnnviz.interpret.inside.atlas.scan",
    "atlas_patches": "cnnviz.interpret.inside.atlas.examples",
    "loading": "cnnviz.interpret.inside.atlas.feed",
    "topk": "cnnviz.interpret.inside.atlas.topk",
    "faithfulness": "cnnviz.interpret.evaluate.faithfulness",
    "similarity": "cnnviz.interpret.evaluate.similarity",
    "road": "cnnviz.interpret.evaluate.road",
    "robustness": "cnnviz.interpret.evaluate.robustness",
    "complexity": "cnnviz.interpret.evaluate.complexity",
    "statistics": "cnnviz.interpret.evaluate.statistics",
    "mapsource": "cnnviz.interpret.evaluate.map_sources",
    "evaluation": "cnnviz.interpret.evaluate.scoring",
    "render": "cnnviz.interpret.views.pixels",
    "views": "cnnviz.interpret.views.sheets",
    "charts": "cnnviz.interpret.views.charts",
    "guard": "cnnviz.zoo.core.guard",
    "hooks": "cnnviz.zoo.core.hooks",
}


def install() -> None:
    """Put interpret's finder (:class:`zoo.core.MovedFinder`) on ``sys.meta_path`` once."""
    install_moved("cnnviz.interpret", MOVED)

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

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings

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
    "guard": "cnnviz.zoo.guard",
    "hooks": "cnnviz.zoo.hooks",
}


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``cnnviz.interpret.OLD`` for every old flat module and hands back the module at its new home."""

    def __init__(self) -> None:
        self.specs: dict[str, importlib.machinery.ModuleSpec] = {}

    def find_spec(self, fullname, path=None, target=None):  # noqa: D102  (the import system's protocol)
        old = fullname.removeprefix("cnnviz.interpret.")
        if fullname.startswith("cnnviz.interpret.") and old in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):  # noqa: D102
        new = MOVED[spec.name.removeprefix("cnnviz.interpret.")]
        warnings.warn(f"{spec.name} moved to {new}; import it from there (or from interpret's face)",
                      DeprecationWarning, stacklevel=3)
        module = importlib.import_module(new)
        self.specs[new] = module.__spec__  # the import system stamps the old name's spec on it: undone below
        return module

    def exec_module(self, module):  # noqa: D102  (the new home is already executed)
        module.__spec__ = self.specs[module.__name__]


def install() -> None:
    """Put the finder on ``sys.meta_path`` once."""
    if not any(isinstance(finder, _MovedFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedFinder())

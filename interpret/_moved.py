"""Deprecation shims for the flat layout: ``import interpret.render`` still works, with a warning naming the
new home (``interpret.views.pixels``), the way torchvision and timm keep moved modules importable.

Example:
    >>> import warnings, importlib
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     module = importlib.import_module("interpret.summary")
    >>> module.__name__, "interpret.inside.layer_table" in str(caught[0].message)
    ('interpret.inside.layer_table', True)
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings

MOVED = {
    "registry": "interpret.core.registry",
    "targets": "interpret.core.targets",
    "gradients": "interpret.core.gradients",
    "batching": "interpret.core.batching",
    "distributed": "interpret.core.distributed",
    "occlusion": "interpret.attribution.occlusion",
    "rise": "interpret.attribution.rise",
    "saliency": "interpret.attribution.saliency",
    "guided": "interpret.attribution.guided",
    "extremal": "interpret.attribution.extremal",
    "captum_methods": "interpret.attribution.captum_adapter",
    "cam_core": "interpret.attribution.cam.core",
    "cam": "interpret.attribution.cam.gradcam",
    "cams": "interpret.attribution.cam",
    "engine": "interpret.optimize.engine",
    "objectives": "interpret.optimize.objectives",
    "param": "interpret.optimize.param",
    "transforms": "interpret.optimize.transforms",
    "row_queue": "interpret.optimize.row_queue",
    "actmax": "interpret.optimize.actmax",
    "inversion": "interpret.optimize.inversion",
    "deepdream": "interpret.optimize.deepdream",
    "style": "interpret.optimize.style",
    "adversarial": "interpret.attack.adversarial",
    "fooling": "interpret.attack.fooling",
    "feature_maps": "interpret.inside.feature_maps",
    "filters": "interpret.inside.filters",
    "summary": "interpret.inside.layer_table",
    "prefix": "interpret.inside.up_to_layer",
    "receptive_field": "interpret.inside.fields.receptive_field",
    "field_types": "interpret.inside.fields.types",
    "field_probe": "interpret.inside.fields.probe",
    "geometry": "interpret.inside.fields.geometry",
    "atlas": "interpret.inside.atlas.scan",
    "atlas_patches": "interpret.inside.atlas.examples",
    "loading": "interpret.inside.atlas.feed",
    "topk": "interpret.inside.atlas.topk",
    "faithfulness": "interpret.evaluate.faithfulness",
    "similarity": "interpret.evaluate.similarity",
    "road": "interpret.evaluate.road",
    "robustness": "interpret.evaluate.robustness",
    "complexity": "interpret.evaluate.complexity",
    "statistics": "interpret.evaluate.statistics",
    "mapsource": "interpret.evaluate.map_sources",
    "evaluation": "interpret.evaluate.scoring",
    "render": "interpret.views.pixels",
    "views": "interpret.views.sheets",
    "charts": "interpret.views.charts",
    "guard": "zoo.guard",
    "hooks": "zoo.hooks",
}


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``interpret.OLD`` for every old flat module and hands back the module at its new home."""

    def __init__(self) -> None:
        self.specs: dict[str, importlib.machinery.ModuleSpec] = {}

    def find_spec(self, fullname, path=None, target=None):  # noqa: D102  (the import system's protocol)
        old = fullname.removeprefix("interpret.")
        if fullname.startswith("interpret.") and old in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):  # noqa: D102
        new = MOVED[spec.name.removeprefix("interpret.")]
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

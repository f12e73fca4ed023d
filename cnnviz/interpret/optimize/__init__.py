"""Optimizing images: one engine (:mod:`.engine`: parameterization -> transforms -> model -> objective ->
optimizer step) with composable :mod:`.objectives`, image :mod:`.param`\\ eterizations and random
:mod:`.transforms`; activation maximization, feature inversion, DeepDream and style transfer are presets."""

from cnnviz.interpret.optimize import engine, objectives, param, transforms
from cnnviz.interpret.optimize.actmax import actmax, class_scores, parse_unit, unmoved
from cnnviz.interpret.optimize.deepdream import DEPTH, deepdream, resize
from cnnviz.interpret.optimize.engine import Result, optimize
from cnnviz.interpret.optimize.inversion import inversion_scores, invert
from cnnviz.interpret.optimize.row_queue import RowQueue
from cnnviz.interpret.optimize.step_watch import watch_steps
from cnnviz.interpret.optimize.style import StyleResult, fit_side, style_transfer
from cnnviz.interpret.optimize.unit_pictures import default_preset, unit_pictures

__all__ = [
    "engine", "objectives", "param", "transforms", "actmax", "class_scores", "parse_unit", "unmoved",
    "DEPTH", "deepdream",
    "resize", "Result", "optimize", "inversion_scores", "invert", "RowQueue", "StyleResult", "fit_side",
    "style_transfer", "watch_steps", "default_preset", "unit_pictures",
]

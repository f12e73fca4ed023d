"""zoo's ground floor: the one error type, option checks, the no-mutation guard, hooks, the device, JSON and
atomic files, TensorFlow's 'SAME' padding, and the finder that keeps moved modules importable. It imports
nothing else of cnnviz.

Example:
    >>> from cnnviz.zoo.core import closest
    >>> closest("gradcam", ["gradcam++", "occlusion"])
    "; did you mean 'gradcam++'?"
"""

from cnnviz.zoo.core.checks import (AtLeast, Between, FiniteFloat, ImageSide, LargeImageSide, NonNegativeFloat,
                                    NonNegativeInt, OpenUnitInterval, PositiveFloat, PositiveInt, ScaleFactor,
                                    UnitInterval, argparse_type, check_call, choice_declarations, declarations,
                                    declared, literal_choices, option_type)
from cnnviz.zoo.core.device import pick_device
from cnnviz.zoo.core.errors import CnnvizError, closest
from cnnviz.zoo.core.files import atomic_write
from cnnviz.zoo.core.guard import preserve
from cnnviz.zoo.core.hooks import forward_hooks, forward_pre_hooks, graph_from, hook_counts, record, run_until
from cnnviz.zoo.core.jsonfile import dumps, plain, write_json
from cnnviz.zoo.core.file_names import safe_name
from cnnviz.zoo.core.moved import MovedFinder, install_moved
from cnnviz.zoo.core.padding import pad_same, same_padding

__all__ = [
    "AtLeast", "Between", "CnnvizError", "FiniteFloat", "ImageSide", "LargeImageSide", "MovedFinder",
    "NonNegativeFloat", "NonNegativeInt", "OpenUnitInterval", "PositiveFloat", "PositiveInt", "ScaleFactor",
    "UnitInterval", "argparse_type", "atomic_write", "check_call", "choice_declarations", "closest", "declarations",
    "declared", "dumps", "forward_hooks", "forward_pre_hooks", "graph_from", "hook_counts", "install_moved",
    "literal_choices", "option_type", "pad_same", "plain", "pick_device", "preserve", "record", "run_until", "safe_name", "same_padding",
    "write_json",
]

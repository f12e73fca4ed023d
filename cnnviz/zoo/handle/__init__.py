"""A model behind one handle: the handle, its configuration as data, where the logits are in the output,
layers by dotted name, weights from checkpoints, and the compiled fast path. Imports only zoo's core.

Example:
    >>> from torch import nn
    >>> from cnnviz.zoo.handle import ModelHandle, resolve_layer
    >>> handle = ModelHandle(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), name="tiny", input_size=8)
    >>> type(resolve_layer(handle.model, "0")).__name__
    'Conv2d'
"""

from cnnviz.zoo.handle.compiled import ForwardRunner, forward_runner, job
from cnnviz.zoo.handle.config import ModelConfig
from cnnviz.zoo.handle.handle import (COMPILE_MODES, PRECISIONS, CompileMode, ModelHandle, Precision, as_handle,
                                      input_channels, match_channels, on_model_device)
from cnnviz.zoo.handle.layers import guess_cam_layer, layer_at_depth, layer_depth, layer_name, resolve_layer
from cnnviz.zoo.handle.outputs import OutputSelector, select_logits
from cnnviz.zoo.handle.weights import WEIGHTS_DIR, load_weights, read_checkpoint

__all__ = [
    "COMPILE_MODES", "CompileMode", "ForwardRunner", "ModelConfig", "ModelHandle", "OutputSelector", "PRECISIONS",
    "Precision", "WEIGHTS_DIR", "as_handle", "forward_runner", "guess_cam_layer", "input_channels", "job",
    "layer_at_depth", "layer_depth", "layer_name", "load_weights", "match_channels", "on_model_device",
    "read_checkpoint", "resolve_layer", "select_logits",
]

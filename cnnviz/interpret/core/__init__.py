"""The core every method stands on: the registry, targets, input gradients, batching, sharding, map utilities.

Imports only zoo. Example:
    >>> from cnnviz.interpret.core import methods
    >>> "gradcam" in [m.name for m in methods("attribution")]
    True
"""

from cnnviz.interpret.core.activations import layer_output
from cnnviz.interpret.core.batching import MAX_BATCH, auto_batch_size, chunks
from cnnviz.interpret.core.dense_targets import (BoxScore, RegionScore, dense_target, detection_target,
                                                 explained_caption, region_target)
from cnnviz.interpret.core.distributed import (
                                    Group,
                                    agree,
                                    barrier,
                                    current,
                                    gather_cat,
                                    gather_jobs,
                                    session,
                                    shard_batches,
                                    shard_jobs,
)
from cnnviz.interpret.core.fingerprint import data_identity, model_identity, weights_digest
from cnnviz.interpret.core.gradients import input_gradients
from cnnviz.interpret.core.maps import attribution_map
from cnnviz.interpret.core.removal import FILLS, Fill, removed_pixels
from cnnviz.interpret.core.option_spec import OptionSpec, docstring_args, option_specs
from cnnviz.interpret.core.registry import Method, as_batch, get_method, method, method_factory, methods
from cnnviz.interpret.core.targets import (
                                    ResolvedTarget,
                                    ScoreFn,
                                    Target,
                                    class_index,
                                    class_probabilities,
                                    is_score_fn,
                                    pass_target,
                                    resolve_target,
                                    take,
                                    target_indices,
                                    target_scores,
)

__all__ = [
    "MAX_BATCH", "auto_batch_size", "chunks",
    "Group", "agree", "barrier", "current", "gather_cat", "gather_jobs", "session", "shard_batches", "shard_jobs",
    "input_gradients", "attribution_map", "layer_output", "data_identity", "model_identity",
    "FILLS", "Fill", "removed_pixels", "Method", "as_batch", "get_method", "method", "method_factory", "methods",
    "ResolvedTarget", "ScoreFn", "Target", "class_index", "class_probabilities", "is_score_fn", "pass_target",
    "resolve_target", "take", "target_indices", "target_scores", "BoxScore", "RegionScore", "dense_target", "detection_target",
    "region_target", "explained_caption", "OptionSpec", "docstring_args", "option_specs",
    "weights_digest",
]

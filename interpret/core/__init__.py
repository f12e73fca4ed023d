"""The core every method stands on: the registry, targets, input gradients, batching, sharding, map utilities.

Imports only zoo. Example:
    >>> from interpret.core import methods
    >>> "gradcam" in [m.name for m in methods("attribution")]
    True
"""

from interpret.core.activations import layer_output
from interpret.core.batching import MAX_BATCH, auto_batch_size, chunks
from interpret.core.dense_targets import BoxScore, RegionScore, dense_target, detection_target, region_target
from interpret.core.distributed import (
                                    Group,
                                    agree,
                                    current,
                                    gather_cat,
                                    gather_jobs,
                                    session,
                                    shard_batches,
                                    shard_jobs,
)
from interpret.core.gradients import input_gradients
from interpret.core.maps import attribution_map
from interpret.core.removal import FILLS, Fill, removed_pixels
from interpret.core.registry import Method, as_batch, get_method, method, method_factory, methods
from interpret.core.targets import (
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
    "Group", "agree", "current", "gather_cat", "gather_jobs", "session", "shard_batches", "shard_jobs",
    "input_gradients", "attribution_map", "layer_output",
    "FILLS", "Fill", "removed_pixels", "Method", "as_batch", "get_method", "method", "method_factory", "methods",
    "ResolvedTarget", "ScoreFn", "Target", "class_index", "class_probabilities", "is_score_fn", "pass_target",
    "resolve_target", "take", "target_indices", "target_scores", "BoxScore", "RegionScore", "dense_target", "detection_target",
    "region_target",
]

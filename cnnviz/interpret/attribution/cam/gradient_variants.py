"""CAM variants that weight the layer's activations by its gradients: Grad-CAM++, XGrad-CAM, HiResCAM,
element-wise Grad-CAM, LayerCAM, Shapley-CAM, Finer-CAM and EigenGrad-CAM.

Each is a few lines over the CAM core (:mod:`interpret.attribution.cam.core`); several layers fuse
the way pytorch-grad-cam fuses them, and each is tested allclose against pytorch-grad-cam 1.5.7.

Example:
    >>> from cnnviz import zoo, interpret
    >>> handle = zoo.load("efficientnet_lite0", device="cpu")
    >>> images = handle.prepare([zoo.load_image("coffee")])
    >>> interpret.layercam(handle, images, "espresso", layer="blocks.15,head").shape
    torch.Size([1, 1, 224, 224])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cnnviz.interpret.attribution.cam.core import (
    SPATIAL,
    CamBatch,
    LayerArg,
    LayerView,
    Reshape,
    ScoreRule,
    class_activation_maps,
    principal_projection,
    weighted_sum,
)
from cnnviz.interpret.attribution.cam.gradcam import grad_cam_map
from cnnviz.interpret.core.registry import method
from cnnviz.interpret.core.targets import Target, is_score_fn, target_indices
from cnnviz.zoo.core import CnnvizError
from cnnviz.zoo.handle import ModelHandle

# --- gradient-weighted CAMs ------------------------------------------------------------------

@method("gradcam_plusplus", "attribution", "Grad-CAM++: positive gradients weighted per pixel",
        group="cams", order=32)
def gradcam_plusplus(handle: ModelHandle, images: torch.Tensor, target: Target = None, *,
                     layer: LayerArg = None, reshape: Reshape = "auto", upsample: bool = True,
                     batch_size: int | None = None) -> torch.Tensor:
    """Grad-CAM++ (Chattopadhyay et al. 2018): channel weights sum relu(G) times per-pixel alphas.

    Good at several instances of a class (each gets its own weight); bad at its assumption that the
    score is exponential in the logit, which makes the alphas a closed-form guess.

    Measured on efficientnet_lite0 (chelsea, coffee, rocket; BENCHMARKS.md leaderboard, 2026-12-01):
    deletion AUC 0.119 (lower is better), insertion AUC 0.382 (higher is better).

    Args:
        reshape: how a token or channels-last layer becomes a grid (``auto``, ``tokens``, ...).
        batch_size: images per forward/backward pass (default: sized to the device).
    """
    def variant(batch: CamBatch, view: LayerView) -> torch.Tensor:
        a, g = view.activation, view.grad
        g2 = g * g
        alphas = g2 / (2 * g2 + a.sum(dim=SPATIAL, keepdim=True) * g2 * g + 1e-6)
        alphas = torch.where(g != 0, alphas, torch.zeros_like(alphas))
        return weighted_sum((F.relu(g) * alphas).sum(dim=SPATIAL), a)
    return class_activation_maps(handle, images, target, layer, variant, upsample_to_input=upsample,
                                 reshape=reshape, batch_size=batch_size)


@method("xgradcam", "attribution", "XGrad-CAM: gradients weighted by normalized activations", group="cams", order=33)
def xgradcam(handle: ModelHandle, images: torch.Tensor, target: Target = None, *,
             layer: LayerArg = None, reshape: Reshape = "auto", upsample: bool = True,
             batch_size: int | None = None) -> torch.Tensor:
    """XGrad-CAM (Fu et al. 2020): weights ``sum G A / sum A``, derived from sensitivity and conservation axioms.

    Good: as cheap as Grad-CAM, better localized where activations are sparse; bad: the axioms hold only
    for a linear head after global average pooling.

    Measured on efficientnet_lite0 (chelsea, coffee, rocket; BENCHMARKS.md leaderboard, 2026-12-01):
    deletion AUC 0.122 (lower is better), insertion AUC 0.388 (higher is better).

    Args:
        reshape: how a token or channels-last layer becomes a grid.
        upsample: resize to the input size (else the layer's grid; one layer only).
        batch_size: images per forward/backward pass.
    """
    def variant(batch: CamBatch, view: LayerView) -> torch.Tensor:
        a, g = view.activation, view.grad
        return weighted_sum((g * a / (a.sum(dim=SPATIAL, keepdim=True) + 1e-7)).sum(dim=SPATIAL), a)
    return class_activation_maps(handle, images, target, layer, variant, upsample_to_input=upsample,
                                 reshape=reshape, batch_size=batch_size)


@method("hirescam", "attribution", "HiResCAM: gradient times activation, summed over channels", group="cams", order=34)
def hirescam(handle: ModelHandle, images: torch.Tensor, target: Target = None, *,
             layer: LayerArg = None, reshape: Reshape = "auto", upsample: bool = True,
             batch_size: int | None = None) -> torch.Tensor:
    """HiResCAM (Draelos & Carin 2020): ``sum_c G_c * A_c`` element-wise, no spatial averaging of gradients.

    Good: provably shows the locations that raise the score for models ending in a linear head;
    bad: noisier than Grad-CAM where gradients vary within a channel.

    Measured on efficientnet_lite0 (chelsea, coffee, rocket; BENCHMARKS.md leaderboard, 2026-12-01):
    deletion AUC 0.122 (lower is better), insertion AUC 0.388 (higher is better).

    Args:
        reshape: how a token or channels-last layer becomes a grid.
        upsample: resize to the input size (else the layer's grid; one layer only).
        batch_size: images per forward/backward pass.
    """
    def variant(batch: CamBatch, view: LayerView) -> torch.Tensor:
        return (view.grad * view.activation).sum(dim=1)
    return class_activation_maps(handle, images, target, layer, variant, upsample_to_input=upsample,
                                 reshape=reshape, batch_size=batch_size)


@method("gradcam_elementwise", "attribution", "Grad-CAM element-wise: ReLU of G*A before the channel sum",
        group="cams", order=35)
def gradcam_elementwise(handle: ModelHandle, images: torch.Tensor, target: Target = None, *,
                        layer: LayerArg = None, reshape: Reshape = "auto", upsample: bool = True,
                        batch_size: int | None = None) -> torch.Tensor:
    """Grad-CAM element-wise (pytorch-grad-cam's variant of HiResCAM): ``sum_c relu(G_c * A_c)``.

    Good: negative evidence in one channel cannot cancel positive evidence in another; bad: it loses
    HiResCAM's guarantee and overstates weak, positive-only evidence.

    Measured on efficientnet_lite0 (chelsea, coffee, rocket; BENCHMARKS.md leaderboard, 2026-12-01):
    deletion AUC 0.119 (lower is better), insertion AUC 0.381 (higher is better).

    Args:
        reshape: how a token or channels-last layer becomes a grid.
        upsample: resize to the input size (else the layer's grid; one layer only).
        batch_size: images per forward/backward pass.
    """
    def variant(batch: CamBatch, view: LayerView) -> torch.Tensor:
        return F.relu(view.grad * view.activation).sum(dim=1)
    return class_activation_maps(handle, images, target, layer, variant, upsample_to_input=upsample,
                                 reshape=reshape, batch_size=batch_size)


@method("layercam", "attribution", "LayerCAM: positive gradients times activations, per pixel", group="cams", order=36)
def layercam(handle: ModelHandle, images: torch.Tensor, target: Target = None, *,
             layer: LayerArg = None, reshape: Reshape = "auto", upsample: bool = True,
             batch_size: int | None = None) -> torch.Tensor:
    """LayerCAM (Jiang et al. 2021): ``sum_c relu(G_c) * A_c``, per pixel.

    Good: works on early, high-resolution layers and fuses well across layers (``layer="a,b,c"``);
    bad: on the last layer it is close to Grad-CAM at the same cost.

    Measured on efficientnet_lite0 (chelsea, coffee, rocket; BENCHMARKS.md leaderboard, 2026-12-01):
    deletion AUC 0.119 (lower is better), insertion AUC 0.381 (higher is better).

    Args:
        reshape: how a token or channels-last layer becomes a grid.
        upsample: resize to the input size (else the layer's grid; one layer only).
        batch_size: images per forward/backward pass.
    """
    def variant(batch: CamBatch, view: LayerView) -> torch.Tensor:
        return (F.relu(view.grad) * view.activation).sum(dim=1)
    return class_activation_maps(handle, images, target, layer, variant, upsample_to_input=upsample,
                                 reshape=reshape, batch_size=batch_size)


@method("shapleycam", "attribution", "Shapley-CAM: gradient minus half the Hessian term, averaged",
        group="cams", order=37)
def shapleycam(handle: ModelHandle, images: torch.Tensor, target: Target = None, *,
               layer: LayerArg = None, reshape: Reshape = "auto", upsample: bool = True,
               batch_size: int | None = None) -> torch.Tensor:
    """Shapley-CAM (Cai 2025): channel weights ``mean(G - H A / 2)``, a second-order Shapley estimate.

    Good: corrects Grad-CAM where the score is far from linear in the activations; bad: a
    Hessian-vector product doubles the backward cost and needs a twice-differentiable network.

    Measured on efficientnet_lite0 (chelsea, coffee, rocket; BENCHMARKS.md leaderboard, 2026-12-01):
    deletion AUC 0.122 (lower is better), insertion AUC 0.388 (higher is better).

    Args:
        reshape: how a token or channels-last layer becomes a grid.
        upsample: resize to the input size (else the layer's grid; one layer only).
        batch_size: images per forward/backward pass.
    """
    def variant(batch: CamBatch, view: LayerView) -> torch.Tensor:
        hvp = view.hvp if view.hvp is not None else torch.zeros_like(view.grad)
        return weighted_sum((view.grad - 0.5 * hvp).mean(dim=SPATIAL), view.activation)
    return class_activation_maps(handle, images, target, layer, variant, upsample_to_input=upsample,
                                 needs="hessian", reshape=reshape,
                                 batch_size=batch_size)


def finer_score(alpha: float, compare: int) -> ScoreRule:
    """Finer-CAM's score: the target logit minus ``alpha`` times each of its ``compare`` closest rivals'
    logits, averaged with the rivals' softmax probabilities as weights; rivals chosen on each output."""
    def score(handle: ModelHandle, target: object, output: torch.Tensor) -> torch.Tensor:
        main = target_indices(handle, target, output.detach())  # type: ignore[arg-type]
        logit = output.gather(1, main[:, None])
        order = (output.detach() - logit.detach()).abs().argsort(dim=1, stable=True)
        rivals = order[:, 1:1 + min(compare, output.shape[1] - 1)]
        weights = output.softmax(dim=1).gather(1, rivals)
        gaps = logit - alpha * output.gather(1, rivals)
        return (weights * gaps).sum(dim=1) / (weights.sum(dim=1) + 1e-9)
    return score


@method("finercam", "attribution", "Finer-CAM: Grad-CAM of the gap to the most similar classes", group="cams", order=38)
def finercam(handle: ModelHandle, images: torch.Tensor, target: Target = None, *,
             layer: LayerArg = None, reshape: Reshape = "auto", upsample: bool = True, alpha: float = 1.0,
             compare: int = 3, batch_size: int | None = None) -> torch.Tensor:
    """Finer-CAM (Zhang et al. 2025): Grad-CAM of the target logit minus its closest rivals' logits.

    Good: fine-grained classes (two bird species), where plain Grad-CAM highlights what the classes share;
    bad: with no close rival the map is Grad-CAM's with more noise.

    Measured on efficientnet_lite0 (chelsea, coffee, rocket; BENCHMARKS.md leaderboard, 2026-12-01):
    deletion AUC 0.120 (lower is better), insertion AUC 0.371 (higher is better).

    Args:
        alpha: how much of the rivals' logits to subtract (0: plain Grad-CAM).
        compare: how many closest classes to compare against.
        reshape: how a token or channels-last layer becomes a grid.
        upsample: resize to the input size (else the layer's grid; one layer only).
        batch_size: images per forward/backward pass.
    """
    if compare < 1:
        raise CnnvizError(f"compare must be at least 1, got {compare}")
    if is_score_fn(target):
        raise CnnvizError("Finer-CAM builds its own score from a class: give a class index or name, not a callable")

    return class_activation_maps(handle, images, target, layer, grad_cam_map, upsample_to_input=upsample,
                                 reshape=reshape, batch_size=batch_size, score_rule=finer_score(alpha, compare))



@method("eigengradcam", "attribution", "EigenGrad-CAM: first principal component of G*A", group="cams", order=40)
def eigengradcam(handle: ModelHandle, images: torch.Tensor, target: Target = None, *,
                 layer: LayerArg = None, reshape: Reshape = "auto", upsample: bool = True,
                 batch_size: int | None = None) -> torch.Tensor:
    """EigenGrad-CAM (pytorch-grad-cam's class-aware Eigen-CAM): the principal component of ``G * A``.

    Good: class-discriminative, and cleaner than HiResCAM; bad: a principal component need not be the
    evidence for the class (the sign is fixed as in Eigen-CAM).

    Measured on efficientnet_lite0 (chelsea, coffee, rocket; BENCHMARKS.md leaderboard, 2026-12-01):
    deletion AUC 0.125 (lower is better), insertion AUC 0.419 (higher is better).

    Args:
        reshape: how a token or channels-last layer becomes a grid.
        upsample: resize to the input size (else the layer's grid; one layer only).
        batch_size: images per forward/backward pass.
    """
    def variant(batch: CamBatch, view: LayerView) -> torch.Tensor:
        return principal_projection(view.grad * view.activation)
    return class_activation_maps(handle, images, target, layer, variant, upsample_to_input=upsample,
                                 reshape=reshape, batch_size=batch_size)

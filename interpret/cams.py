"""The CAM family: each variant is a few lines over the shared core (:mod:`interpret.cam_core`).

Every variant takes ``layer=`` (one layer, a list, or ``"a,b"``; several are fused the way
pytorch-grad-cam fuses them) and ``reshape=`` for token and channels-last layers, and is tested
allclose against pytorch-grad-cam 1.5.7 on torchvision resnet18 and efficientnet_lite0.
Measured numbers (deletion/insertion AUC, seconds) are in BENCHMARKS.md.

Example:
    >>> import zoo, interpret
    >>> handle = zoo.load("efficientnet_lite0", device="cpu")
    >>> images = handle.prepare([zoo.load_image("coffee")])
    >>> interpret.layercam(handle, images, "espresso", layer="blocks.15,head").shape
    torch.Size([1, 1, 224, 224])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from interpret.batching import MAX_BATCH, auto_batch_size, chunks
from interpret.cam import grad_cam_map
from interpret.cam_core import (CamBatch, LayerArg, LayerView, Reshape, ScoreRule, cam_layers,
                                class_activation_maps, fuse, min_max, to_grid, upsample)
from interpret.gradients import pass_target, take
from interpret.hooks import forward_hooks, record
from interpret.registry import method
from interpret.targets import Target, target_indices, target_scores
from zoo.compiled import forward_runner
from zoo.errors import CnnvizError
from zoo.handle import ModelHandle

SPATIAL = (2, 3)


def weighted_sum(weights: torch.Tensor, activation: torch.Tensor) -> torch.Tensor:
    """``sum_c w_c A_c``: the CAM of channel weights ``(b, C)`` on a ``(b, C, h, w)`` grid."""
    return (weights[:, :, None, None] * activation).sum(dim=1)


def principal_projection(grid: torch.Tensor, *, align: bool = True) -> torch.Tensor:
    """Each map's pixels projected on their first principal component ``(b, h, w)`` (Eigen-CAM).

    Pixels are rows, channels columns, centred per channel. An SVD's sign is arbitrary (LAPACK builds
    differ); with ``align`` the sign makes the projection correlate positively with the channel sum of
    ``grid``, so the map points at strong activations whatever the SVD returned.
    """
    b, c, h, w = grid.shape
    pixels = torch.nan_to_num(grid).flatten(2).transpose(1, 2)  # (b, hw, C)
    pixels = pixels - pixels.mean(dim=1, keepdim=True)
    _, _, vh = torch.linalg.svd(pixels, full_matrices=False)
    projection = (pixels @ vh[:, 0, :, None])[..., 0]  # (b, hw)
    if align:
        total = pixels.sum(dim=2)  # the centred channel sum
        sign = torch.sign((projection * total).sum(dim=1, keepdim=True))
        projection = projection * torch.where(sign == 0, torch.ones_like(sign), sign)
    return projection.view(b, h, w)


# --- gradient-weighted CAMs ------------------------------------------------------------------

@method("gradcam_plusplus", "attribution", "Grad-CAM++: positive gradients weighted per pixel",
        group="cams")
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


@method("xgradcam", "attribution", "XGrad-CAM: gradients weighted by normalized activations", group="cams")
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


@method("hirescam", "attribution", "HiResCAM: gradient times activation, summed over channels", group="cams")
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
        group="cams")
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


@method("layercam", "attribution", "LayerCAM: positive gradients times activations, per pixel", group="cams")
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
        group="cams")
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


@method("finercam", "attribution", "Finer-CAM: Grad-CAM of the gap to the most similar classes", group="cams")
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
    if callable(target) and not isinstance(target, (str, torch.Tensor)):
        raise CnnvizError("Finer-CAM builds its own score from a class: give a class index or name, not a callable")

    return class_activation_maps(handle, images, target, layer, grad_cam_map, upsample_to_input=upsample,
                                 reshape=reshape, batch_size=batch_size, score_rule=finer_score(alpha, compare))


# --- activation-only CAMs ----------------------------------------------------------------------

@method("eigencam", "attribution", "Eigen-CAM: first principal component of the activations", group="cams")
def eigencam(handle: ModelHandle, images: torch.Tensor, target: Target = None, *,
             layer: LayerArg = None, reshape: Reshape = "auto", upsample: bool = True,
             batch_size: int | None = None) -> torch.Tensor:
    """Eigen-CAM (Muhammad & Yeasin 2020): the activations projected on their first principal component.

    Good: no gradients, no target, robust to a broken backward pass; bad: class-agnostic (the target
    is ignored: the map shows the dominant object). The SVD's arbitrary sign is fixed so the map
    correlates positively with the summed activations (pytorch-grad-cam keeps LAPACK's sign, which
    can invert its map).

    Measured on efficientnet_lite0 (chelsea, coffee, rocket; BENCHMARKS.md leaderboard, 2026-12-01):
    deletion AUC 0.130 (lower is better), insertion AUC 0.414 (higher is better).

    Args:
        reshape: how a token or channels-last layer becomes a grid.
        upsample: resize to the input size (else the layer's grid; one layer only).
        batch_size: images per forward pass.
    """
    def variant(batch: CamBatch, view: LayerView) -> torch.Tensor:
        return principal_projection(view.activation)
    return class_activation_maps(handle, images, target, layer, variant, upsample_to_input=upsample,
                                 needs="activations", reshape=reshape,
                                 batch_size=batch_size)


@method("eigengradcam", "attribution", "EigenGrad-CAM: first principal component of G*A", group="cams")
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


def kernel_projection(grid: torch.Tensor, gamma: float | None) -> torch.Tensor:
    """Pixels projected on the first kernel principal component, sigmoid kernel ``tanh(gamma x.y + 1)``
    (``gamma`` default ``1 / C``); the sign makes the largest eigenvector entry positive (scikit-learn's rule)."""
    b, c, h, w = grid.shape
    pixels = torch.nan_to_num(grid).flatten(2).transpose(1, 2).double()
    pixels = pixels - pixels.mean(dim=1, keepdim=True)
    kernel = torch.tanh((gamma if gamma is not None else 1.0 / c) * pixels @ pixels.transpose(1, 2) + 1.0)
    kernel = kernel - kernel.mean(dim=1, keepdim=True) - kernel.mean(dim=2, keepdim=True) \
        + kernel.mean(dim=(1, 2), keepdim=True)
    values, vectors = torch.linalg.eigh(kernel)
    top, value = vectors[..., -1], values[..., -1].clamp(min=0)
    sign = torch.sign(top.gather(1, top.abs().argmax(dim=1, keepdim=True)))
    return (top * sign * value.sqrt()[:, None]).view(b, h, w).to(grid.dtype)


@method("kpcacam", "attribution", "KPCA-CAM: first kernel principal component of the activations",
        group="cams")
def kpcacam(handle: ModelHandle, images: torch.Tensor, target: Target = None, *,
            layer: LayerArg = None, reshape: Reshape = "auto", upsample: bool = True, gamma: float | None = None,
            batch_size: int | None = None) -> torch.Tensor:
    """KPCA-CAM (Karmani et al. 2024): Eigen-CAM with kernel PCA (sigmoid kernel).

    Good: captures non-linear structure that plain PCA misses; bad: class-agnostic like Eigen-CAM, and an
    ``(hw x hw)`` eigenproblem per image, cheap at 7 x 7 but slow on early layers.

    Measured on efficientnet_lite0 (chelsea, coffee, rocket; BENCHMARKS.md leaderboard, 2026-12-01):
    deletion AUC 0.129 (lower is better), insertion AUC 0.401 (higher is better).

    Args:
        gamma: the kernel's scale (default ``1 / channels``).
        reshape: how a token or channels-last layer becomes a grid.
        upsample: resize to the input size (else the layer's grid; one layer only).
        batch_size: images per forward pass.
    """
    def variant(batch: CamBatch, view: LayerView) -> torch.Tensor:
        return kernel_projection(view.activation, gamma)
    return class_activation_maps(handle, images, target, layer, variant, upsample_to_input=upsample,
                                 needs="activations", reshape=reshape,
                                 batch_size=batch_size)


@method("fem", "attribution", "FEM: channels weighted by how often they exceed mean + k std", group="cams")
def fem(handle: ModelHandle, images: torch.Tensor, target: Target = None, *,
        layer: LayerArg = None, reshape: Reshape = "auto", upsample: bool = True, k: float = 2.0,
        batch_size: int | None = None) -> torch.Tensor:
    """FEM, the feature explanation method (Fuad et al. 2020): each channel weighted by the share of its
    pixels above ``mean + k std``.

    Good: no gradients, highlights rare strong activations; bad: class-agnostic (ignores the target).

    Measured on efficientnet_lite0 (chelsea, coffee, rocket; BENCHMARKS.md leaderboard, 2026-12-01):
    deletion AUC 0.124 (lower is better), insertion AUC 0.369 (higher is better).

    Args:
        k: how many standard deviations above the mean count as a strong activation.
        reshape: how a token or channels-last layer becomes a grid.
        upsample: resize to the input size (else the layer's grid; one layer only).
        batch_size: images per forward pass.
    """
    def variant(batch: CamBatch, view: LayerView) -> torch.Tensor:
        a = view.activation
        threshold = a.mean(dim=SPATIAL, keepdim=True) + k * a.std(dim=SPATIAL, keepdim=True, unbiased=False)
        return weighted_sum((a > threshold).float().mean(dim=SPATIAL), a)
    return class_activation_maps(handle, images, target, layer, variant, upsample_to_input=upsample,
                                 needs="activations", reshape=reshape,
                                 batch_size=batch_size)


# --- CAMs that send masked inputs or ablated activations through the model -----------------------

@method("scorecam", "attribution", "Score-CAM: channels weighted by the score of the image they mask",
        group="cams")
def scorecam(handle: ModelHandle, images: torch.Tensor, target: Target = None, *,
             layer: LayerArg = None, reshape: Reshape = "auto", upsample: bool = True,
             batch_size: int | None = None) -> torch.Tensor:
    """Score-CAM (Wang et al. 2020): each channel, upsampled and scaled to [0, 1], masks the image; the
    softmax over channels of the masked images' target logits weights the channels.

    Good: no gradients, so no saturation or gradient noise; bad: one forward pass per channel per image
    (1280 on lite0's head). All masked copies stream through the model in full device-sized batches:
    0.96 of lite0's forward limit on a CPU, 1.2x pytorch-grad-cam's ScoreCAM (BENCHMARKS.md).

    Args:
        reshape: how a token or channels-last layer becomes a grid.
        upsample: resize to the input size (else the layer's grid; one layer only).
        batch_size: masked images per forward pass (default: sized to the device).
    """
    stream = batch_size or auto_batch_size(handle)

    def variant(batch: CamBatch, view: LayerView) -> torch.Tensor:
        a = view.activation
        b, c = a.shape[:2]
        scores = torch.empty(b * c, device=a.device)
        forward = forward_runner(batch.handle, b * c, stream)
        with torch.no_grad():
            for rows in chunks(b * c, stream, desc="scorecam"):
                flat = torch.arange(rows.start, rows.stop, device=a.device)
                image, channel = flat // c, flat % c
                masks = F.interpolate(a[image, channel][:, None], size=batch.images.shape[-2:], mode="bilinear",
                                      align_corners=True)
                low = masks.amin(dim=SPATIAL, keepdim=True)
                masks = (masks - low) / (masks.amax(dim=SPATIAL, keepdim=True) - low + 1e-8)
                scores[rows] = batch.scores(forward(batch.images[image] * masks), image)
        return weighted_sum(scores.view(b, c).softmax(dim=1), a)
    return class_activation_maps(handle, images, target, layer, variant, upsample_to_input=upsample,
                                 needs="activations", reshape=reshape)


def _channel_axis(output: torch.Tensor, grid: torch.Tensor) -> int:
    """Where the grid's channels sit in the layer's own output (1 for conv maps, last for the others)."""
    return 1 if output.dim() == 4 and output.shape[1] == grid.shape[1] and output.shape[2:] == grid.shape[2:] \
        else output.dim() - 1


@method("ablationcam", "attribution", "Ablation-CAM: channels weighted by the score drop when zeroed",
        group="cams")
def ablationcam(handle: ModelHandle, images: torch.Tensor, target: Target = None, *,
                layer: LayerArg = None, reshape: Reshape = "auto", upsample: bool = True,
                batch_size: int | None = None) -> torch.Tensor:
    """Ablation-CAM (Desai & Ramaswamy 2020): weight ``(y - y_c) / y`` per channel, ``y_c`` the target logit
    with channel ``c`` of the layer set to zero.

    Good: gradient-free and faithful to what each channel contributes; bad: one pass per channel.
    Only the network above the layer runs per ablation: each batch feeds the model one clean image, and a
    hook on the layer swaps its output for the batch of ablated copies (skip connections from below the
    layer broadcast over it). 45.7x pytorch-grad-cam's AblationCAM on lite0's
    blocks.15 (BENCHMARKS.md).

    Measured on efficientnet_lite0 (chelsea, coffee, rocket; BENCHMARKS.md leaderboard, 2026-12-01):
    deletion AUC 0.120 (lower is better), insertion AUC 0.397 (higher is better).

    Args:
        reshape: how a token or channels-last layer becomes a grid.
        upsample: resize to the input size (else the layer's grid; one layer only).
        batch_size: ablated copies per pass above the layer (default: sized to the layer's grid).
    """
    def variant(batch: CamBatch, view: LayerView) -> torch.Tensor:
        a, out = view.activation, view.output
        b, c = a.shape[:2]
        axis = _channel_axis(out, a)
        stream = batch_size or (MAX_BATCH if handle.device.type == "cuda"
                                else auto_batch_size(handle, size=max(a.shape[-2:])))
        clean = batch.scores(batch.logits, torch.arange(b, device=a.device))
        ablated = torch.empty(b, c, device=a.device)
        for i in range(b):
            for rows in chunks(c, stream, desc="ablationcam" if i == 0 else None):
                channels = torch.arange(rows.start, rows.stop, device=a.device)
                copies = out[i:i + 1].repeat(channels.numel(), *[1] * (out.dim() - 1))
                keep = torch.ones(channels.numel(), out.shape[axis], device=a.device, dtype=out.dtype)
                keep[torch.arange(channels.numel()), channels] = 0
                shape = [channels.numel()] + [1] * (out.dim() - 1)
                shape[axis] = out.shape[axis]
                copies = copies * keep.view(shape)
                with torch.no_grad(), forward_hooks([(view.module, lambda m, i_, o, x=copies: x)]):
                    output = batch.handle(batch.images[i:i + 1])
                if output.shape[0] != channels.numel():
                    raise CnnvizError(f"Ablation-CAM feeds layer {view.name!r}'s ablated copies to the network "
                                      "above it, but the model's output does not follow that batch: pick a layer "
                                      "on the network's main path")
                ablated[i, rows] = batch.scores(output, torch.full_like(channels, i))
        return weighted_sum((clean[:, None] - ablated) / clean[:, None], a)
    return class_activation_maps(handle, images, target, layer, variant, upsample_to_input=upsample,
                                 needs="activations", reshape=reshape)


# --- FullGrad: every bias of the network ------------------------------------------------------------

def bias_layers(handle: ModelHandle) -> dict[str, torch.nn.Module]:
    """Every ``Conv2d`` and ``BatchNorm2d`` with a bias: the layers FullGrad reads."""
    return {name: module for name, module in handle.model.named_modules()
            if type(module) in (torch.nn.Conv2d, torch.nn.BatchNorm2d) and module.bias is not None}


def effective_bias(module: torch.nn.Module) -> torch.Tensor:
    """The bias a layer adds in eval mode (for batch norm: ``beta - mean * gamma / sqrt(var + eps)``)."""
    if isinstance(module, torch.nn.BatchNorm2d) and module.running_mean is not None:
        return module.bias - module.running_mean * module.weight / torch.sqrt(module.running_var + module.eps)
    return module.bias


@method("fullgrad", "attribution", "FullGrad: input gradient plus every layer's bias gradients", group="cams")
def fullgrad(handle: ModelHandle, images: torch.Tensor, target: Target = None, *,
             batch_size: int | None = None) -> torch.Tensor:
    """FullGrad (Srinivas & Fleuret 2019): ``|x * dS/dx|`` plus ``|b * dS/db|`` of every conv and batch-norm
    bias, each channel scaled to [0, 1], upsampled and summed.

    Good: complete (input and bias gradients add up to the score) and sharp; bad: reads every layer, so it
    takes no ``layer=``, and a network without conv or batch-norm biases (a ViT) leaves only the input term.

    Measured on efficientnet_lite0 (chelsea, coffee, rocket; BENCHMARKS.md leaderboard, 2026-12-01):
    deletion AUC 0.110 (lower is better), insertion AUC 0.360 (higher is better).

    Args:
        batch_size: images per forward/backward pass.
    """
    layers = bias_layers(handle)
    if not layers:
        raise CnnvizError(f"FullGrad reads the biases of Conv2d and BatchNorm2d layers, and {handle.name} has none")
    resolved = pass_target(handle, images, target)
    size = images.shape[-2:]
    batch_size = batch_size or auto_batch_size(handle, backward=True)
    maps = []
    for rows in chunks(images.shape[0], batch_size, desc="fullgrad"):
        x = images[rows].detach().requires_grad_(True)
        with torch.enable_grad(), record(layers, detach=False) as recs:
            score = target_scores(handle, None if resolved is None else take(resolved, rows), handle(x)).sum()
            outputs = [recs[name].output for name in layers]
            grads = torch.autograd.grad(score, [x, *outputs], allow_unused=True)
        terms = [(grads[0] * x.detach()).abs()]
        terms += [(effective_bias(module).view(1, -1, 1, 1) * g).abs()
                  for module, g in zip(layers.values(), grads[1:]) if g is not None]
        # Each channel is scaled to [0, 1] on its own grid; bilinear upsampling is linear, so a layer's scaled
        # channels are summed first and upsampled once (the same result, one resize per layer, not per channel).
        maps.append(sum(upsample(min_max(t.flatten(0, 1)).view(t.shape).sum(dim=1, keepdim=True), size)
                        for t in terms))
    return torch.cat(maps)


__all__ = ["ablationcam", "bias_layers", "cam_layers", "eigencam", "eigengradcam", "fem", "finercam",
           "fullgrad", "fuse", "gradcam_elementwise", "gradcam_plusplus", "hirescam", "kpcacam", "layercam",
           "scorecam", "shapleycam", "to_grid", "xgradcam"]

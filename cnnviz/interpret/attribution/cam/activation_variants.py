"""CAM variants that need only the layer's activations (no backward pass): Eigen-CAM, KPCA-CAM and FEM.

Example:
    >>> from cnnviz import zoo, interpret
    >>> handle = zoo.load("efficientnet_lite0", device="cpu")
    >>> images = handle.prepare([zoo.load_image("coffee")])
    >>> interpret.eigencam(handle, images, layer="head").shape
    torch.Size([1, 1, 224, 224])
"""

from __future__ import annotations

import torch

from cnnviz.interpret.attribution.cam.core import (
    SPATIAL,
    CamBatch,
    LayerArg,
    LayerView,
    Reshape,
    class_activation_maps,
    principal_projection,
    weighted_sum,
)
from cnnviz.interpret.core.registry import method
from cnnviz.interpret.core.targets import Target
from cnnviz.zoo.handle import ModelHandle

# --- activation-only CAMs ----------------------------------------------------------------------

@method("eigencam", "attribution", "Eigen-CAM: first principal component of the activations", group="cams", order=39)
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


def kernel_projection(grid: torch.Tensor, gamma: float | None) -> torch.Tensor:
    """Pixels projected on the first kernel principal component, sigmoid kernel ``tanh(gamma x.y + 1)``
    (``gamma`` default ``1 / C``); the sign makes the largest eigenvector entry positive (scikit-learn's rule)."""
    b, c, h, w = grid.shape
    pixels = torch.nan_to_num(grid).flatten(2).transpose(1, 2).double()
    pixels = pixels - pixels.mean(dim=1, keepdim=True)
    kernel = torch.tanh((gamma if gamma is not None else 1.0 / c) * pixels @ pixels.transpose(1, 2) + 1.0)
    kernel = kernel - kernel.mean(dim=1, keepdim=True) - kernel.mean(dim=2, keepdim=True) \
        + kernel.mean(dim=(1, 2), keepdim=True)
    value, top = top_eigenpair(kernel)
    value = value.clamp(min=0)
    sign = torch.sign(top.gather(1, top.abs().argmax(dim=1, keepdim=True)))
    return (top * sign * value.sqrt()[:, None]).view(b, h, w).to(grid.dtype)


# Above this many grid cells a full eigendecomposition (cubic) gives way to LOBPCG for the one pair needed.
FULL_EIGH_CELLS = 576


def top_eigenpair(kernels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The largest eigenvalue ``(B,)`` and its unit eigenvector ``(B, N)`` of each symmetric ``(N, N)`` matrix.

    Small grids take ``eigh``; larger ones LOBPCG (about N^2 per iteration instead of N^3: 15x faster at a
    48 x 48 grid), checked by its residual and done again with ``eigh`` when it did not converge."""
    n = kernels.shape[-1]
    if n <= FULL_EIGH_CELLS:
        values, vectors = torch.linalg.eigh(kernels)
        return values[..., -1], vectors[..., -1]
    values, vectors = [], []
    for kernel in kernels:
        value, vector = torch.lobpcg(kernel, k=1, largest=True, tol=1e-12, niter=500)
        value, vector = value[0], vector[:, 0]
        residual = (kernel @ vector - value * vector).norm()
        if not residual <= 1e-8 * kernel.norm():
            full_values, full_vectors = torch.linalg.eigh(kernel)
            value, vector = full_values[-1], full_vectors[:, -1]
        values.append(value)
        vectors.append(vector)
    return torch.stack(values), torch.stack(vectors)


@method("kpcacam", "attribution", "KPCA-CAM: first kernel principal component of the activations",
        group="cams", order=41)
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


@method("fem", "attribution", "FEM: channels weighted by how often they exceed mean + k std", group="cams", order=42)
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

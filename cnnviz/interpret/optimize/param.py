"""Image parameterizations: what the optimizer actually changes.

A parameterization is a module whose ``forward()`` returns a batch of images
in [0, 1]. Raw pixels are simple and exact; a Fourier basis with 1/f scaling
and decorrelated colour makes gradient steps change low frequencies as
easily as high ones, which avoids the high-frequency "adversarial noise"
that pixel ascent produces (Olah et al. 2017, "Feature Visualization").
"""

from __future__ import annotations

import torch
from torch import nn

from cnnviz.zoo.core import CnnvizError

# Square root of the colour correlation of ImageNet pixels (Cholesky-like, from its SVD):
# a standard white noise through this matrix has natural-image colour statistics.
COLOR_CORRELATION_SQRT = torch.tensor([[0.26, 0.09, 0.02],
                                       [0.27, 0.00, -0.05],
                                       [0.27, -0.09, 0.03]])


class PixelImage(nn.Module):
    """Raw pixels, kept in [0, 1] by :meth:`project` after each step.

    Args:
        init: starting images ``(B, C, H, W)`` in [0, 1] (copied), or
        shape: ``(B, C, H, W)`` to start from gray plus a little noise.
    """

    def __init__(self, init: torch.Tensor | None = None, *, shape: tuple[int, int, int, int] | None = None,
                 device: torch.device | str = "cpu", noise: float = 0.01, seed: int = 0) -> None:
        super().__init__()
        if init is None:
            if shape is None:
                raise CnnvizError("PixelImage needs a starting image or a shape")
            generator = torch.Generator(device=device).manual_seed(seed)
            init = 0.5 + noise * torch.randn(shape, generator=generator, device=device)
        self.pixels = nn.Parameter(init.detach().clone().clamp(0, 1))

    def forward(self) -> torch.Tensor:
        return self.pixels

    @torch.no_grad()
    def project(self) -> None:
        """Clamp to the valid range [0, 1]."""
        self.pixels.clamp_(0, 1)


class SnapshotPixels(PixelImage):
    """Raw pixels whose ``forward`` returns a copy: the context an engine ``until`` test sees then holds
    the image that step evaluated, not the parameter the optimizer has stepped since."""

    def forward(self) -> torch.Tensor:
        return self.pixels.clone()


class FourierImage(nn.Module):
    """Images parameterized by their 2-D spectrum, scaled by 1/f^decay, colour-decorrelated, squashed by a sigmoid.

    Args:
        shape: ``(B, C, H, W)``.
        decay: spectrum falloff; 1 gives the 1/f statistics of natural images.
        decorrelate: mix channels with the ImageNet colour correlation (C = 3 only).
        std: standard deviation of the initial spectrum.
    """

    def __init__(self, shape: tuple[int, int, int, int], *, device: torch.device | str = "cpu",
                 decay: float = 1.0, decorrelate: bool = True, std: float = 0.01, seed: int = 0) -> None:
        super().__init__()
        batch, channels, height, width = shape
        fy = torch.fft.fftfreq(height, device=device)[:, None]
        fx = torch.fft.rfftfreq(width, device=device)[None, :]
        frequency = torch.sqrt(fx ** 2 + fy ** 2).clamp(min=1.0 / max(height, width))
        # With the orthonormal inverse FFT, white noise keeps its per-pixel scale at any image size, so
        # no sqrt(H * W) factor: that factor belongs to an unnormalized inverse. With it, pixels came out
        # ~H times too large and the sigmoid saturated every one of them. The 1/4 keeps the sigmoid
        # near its linear range at the start.
        self.register_buffer("scale", (1.0 / frequency ** decay) / 4.0)
        generator = torch.Generator(device=device).manual_seed(seed)
        spectrum = std * torch.randn(batch, channels, *frequency.shape, 2, generator=generator, device=device)
        self.spectrum = nn.Parameter(spectrum)
        self.size = (height, width)
        self.decorrelate = decorrelate and channels == 3
        matrix = COLOR_CORRELATION_SQRT / COLOR_CORRELATION_SQRT.norm(dim=0).max()
        self.register_buffer("color", matrix.to(device))

    def forward(self) -> torch.Tensor:
        spectrum = torch.view_as_complex(self.spectrum) * self.scale
        image = torch.fft.irfft2(spectrum, s=self.size, norm="ortho")
        if self.decorrelate:
            image = torch.einsum("ij,bjhw->bihw", self.color, image)
        return torch.sigmoid(image)

    def project(self) -> None:
        """Nothing to do: the sigmoid keeps pixels in (0, 1)."""


def make_image(kind: str, shape: tuple[int, int, int, int], device: torch.device, *, init: torch.Tensor | None = None,
               seed: int = 0) -> nn.Module:
    """A parameterization by name: ``pixels`` or ``fourier``."""
    if kind == "pixels":
        return PixelImage(init, shape=shape, device=device, seed=seed)
    if kind == "fourier":
        if init is not None:
            raise CnnvizError("the fourier parameterization starts from noise: use pixels to start from an image")
        return FourierImage(shape, device=device, seed=seed)
    raise CnnvizError(f"unknown parameterization {kind!r}: use pixels or fourier")

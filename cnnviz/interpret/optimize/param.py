"""Image parameterizations: what the optimizer actually changes.

A parameterization is a module whose ``forward()`` returns a batch of images
in [0, 1]. Raw pixels are simple and exact; a Fourier basis with 1/f scaling
and decorrelated colour makes gradient steps change low frequencies as
easily as high ones, which avoids the high-frequency "adversarial noise"
that pixel ascent produces (Olah et al. 2017, "Feature Visualization").
MaCo (Fel et al. 2023, "Unlocking Feature Visualization for Deeper Networks
with MAgnitude Constrained Optimization") goes further: the magnitude of the
spectrum is fixed to that of natural photos and only the phase is optimized.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import torch
import torch.nn.functional as F
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


def _color_matrix(channels: int) -> torch.Tensor:
    """The colour mixing of the Fourier parameterizations: ImageNet's for 3 channels, none otherwise."""
    if channels != 3:
        return torch.eye(channels)
    return COLOR_CORRELATION_SQRT / COLOR_CORRELATION_SQRT.norm(dim=0).max()


# The photos the default MaCo spectrum averages: the colour photographs among skimage's offline samples.
SPECTRUM_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "stereo_motorcycle")


def spectrum_photos() -> list[torch.Tensor]:
    """The :data:`SPECTRUM_PHOTOS` as ``(3, H, W)`` tensors in [0, 1] (the left view of the stereo pair)."""
    from skimage import data

    arrays = [getattr(data, name)() for name in SPECTRUM_PHOTOS]
    return [torch.from_numpy(a[0] if isinstance(a, tuple) else a).permute(2, 0, 1).float() / 255 for a in arrays]


def photo_crops(size: tuple[int, int], photos: Sequence[torch.Tensor] | torch.Tensor | None = None) -> torch.Tensor:
    """Square crops of ``photos`` (``(C, H, W)`` each, in [0, 1]; default: :func:`spectrum_photos`) resized to
    ``size``: the whole centre square and the four corner squares of 3/4 of the short side, per photo.

    Example:
        >>> photo_crops((8, 8), torch.rand(2, 3, 20, 30)).shape
        torch.Size([10, 3, 8, 8])
    """
    photos = spectrum_photos() if photos is None else photos
    crops = []
    for photo in photos:
        height, width = photo.shape[-2:]
        for fraction, corners in ((1.0, [(0.5, 0.5)]), (0.75, [(0, 0), (0, 1), (1, 0), (1, 1)])):
            side = int(min(height, width) * fraction)
            for fy, fx in corners:
                top, left = int((height - side) * fy), int((width - side) * fx)
                crop = photo[None, :, top:top + side, left:left + side]
                crops.append(F.interpolate(crop, size=size, mode="bilinear", align_corners=False, antialias=True))
    return torch.cat(crops)


def natural_magnitude(size: tuple[int, int], channels: int = 3,
                      photos: Sequence[torch.Tensor] | torch.Tensor | None = None) -> torch.Tensor:
    """The mean amplitude spectrum ``(channels, H, W // 2 + 1)`` of natural photos, in the decorrelated colour space
    of :class:`MacoImage` (orthonormal ``rfft2`` of each crop less its mean, averaged over :func:`photo_crops`).

    Args:
        size: ``(H, W)`` of the images to make.
        channels: 3 (colour photos, decorrelated) or any other count (each channel gets the photos' gray spectrum).
        photos: ``(C, H, W)`` images in [0, 1] (a list, or a batch) to average instead of skimage's photos
            (e.g. a data set's). Computed once per size for skimage's photos, then cached.

    Example:
        >>> natural_magnitude((32, 32)).shape
        torch.Size([3, 32, 17])
    """
    if photos is None:
        return _skimage_magnitude(tuple(size), channels).clone()
    crops = photo_crops(tuple(size), [photo.detach().float().cpu() for photo in photos])
    if channels == 3 and crops.shape[1] == 3:
        crops = torch.einsum("ij,bjhw->bihw", torch.linalg.inv(_color_matrix(3)), crops)
    else:
        crops = crops.mean(1, keepdim=True).expand(-1, channels, -1, -1)
    crops = crops - crops.mean((-2, -1), keepdim=True)
    return torch.fft.rfft2(crops, norm="ortho").abs().mean(0)


@lru_cache(maxsize=8)
def _skimage_magnitude(size: tuple[int, int], channels: int) -> torch.Tensor:
    return natural_magnitude(size, channels, spectrum_photos())


class MacoImage(nn.Module):
    """Images whose Fourier magnitude is fixed to natural photos' and whose phase alone is optimized (MaCo).

    Each decorrelated colour channel is ``irfft2(magnitude * exp(i * phase))``, with the phase made Hermitian
    where the real FFT needs it, so the image's amplitude spectrum is exactly ``magnitude`` at every step.
    The magnitude is scaled to unit pixel standard deviation (the paper's standardization); then colours are
    recorrelated and a sigmoid maps to (0, 1).

    Args:
        shape: ``(B, C, H, W)``.
        magnitude: ``(C, H, W // 2 + 1)`` amplitude spectrum (default: :func:`natural_magnitude` of skimage's photos).
        seed: seeds the starting phase (uniform in [-pi, pi]).

    Example:
        >>> image = MacoImage((2, 3, 32, 32))
        >>> tuple(image().shape), [name for name, _ in image.named_parameters()]
        ((2, 3, 32, 32), ['phase'])
    """

    def __init__(self, shape: tuple[int, int, int, int], *, magnitude: torch.Tensor | None = None,
                 device: torch.device | str = "cpu", seed: int = 0) -> None:
        super().__init__()
        batch, channels, height, width = shape
        if magnitude is None:
            magnitude = natural_magnitude((height, width), channels)
        expected = (channels, height, width // 2 + 1)
        if tuple(magnitude.shape) != expected:
            raise CnnvizError(f"a MaCo magnitude for {channels}x{height}x{width} images is {expected}, "
                              f"got {tuple(magnitude.shape)}")
        magnitude = magnitude.detach().float().clone()
        magnitude[:, 0, 0] = 0  # the mean stays at the sigmoid's centre
        # Parseval (orthonormal FFT): the interior columns of the half spectrum stand for two coefficients each.
        weight = torch.full((width // 2 + 1,), 2.0)
        weight[0] = 1
        if width % 2 == 0:
            weight[-1] = 1
        energy = (magnitude.pow(2) * weight).sum() / (channels * height * width)
        self.register_buffer("magnitude", (magnitude / energy.sqrt().clamp(min=1e-12)).to(device))
        self.register_buffer("color", _color_matrix(channels).to(device))
        self.register_buffer("mirror", (-torch.arange(height, device=device)) % height)
        self.self_conjugate = [0, width // 2] if width % 2 == 0 else [0]
        generator = torch.Generator(device=device).manual_seed(seed)
        phase = (torch.rand(batch, *expected, generator=generator, device=device) * 2 - 1) * torch.pi
        self.phase = nn.Parameter(phase)
        self.size = (height, width)

    def hermitian_phase(self) -> torch.Tensor:
        """The phase used: odd in the vertical frequency on the columns a real image's spectrum mirrors."""
        phase = self.phase
        columns = phase[..., self.self_conjugate]
        odd = (columns - columns[..., self.mirror, :]) / 2
        return phase.index_copy(-1, torch.tensor(self.self_conjugate, device=phase.device), odd)

    def linear(self) -> torch.Tensor:
        """The images before colour mixing and the sigmoid: their amplitude spectrum is ``magnitude``."""
        spectrum = torch.polar(self.magnitude.expand_as(self.phase), self.hermitian_phase())
        return torch.fft.irfft2(spectrum, s=self.size, norm="ortho")

    def forward(self) -> torch.Tensor:
        return torch.sigmoid(torch.einsum("ij,bjhw->bihw", self.color, self.linear()))

    def project(self) -> None:
        """Nothing to do: the sigmoid keeps pixels in (0, 1)."""


KINDS = ("pixels", "fourier", "maco")


def make_image(kind: str, shape: tuple[int, int, int, int], device: torch.device, *, init: torch.Tensor | None = None,
               seed: int = 0) -> nn.Module:
    """A parameterization by name: ``pixels``, ``fourier`` or ``maco``."""
    if kind == "pixels":
        return PixelImage(init, shape=shape, device=device, seed=seed)
    if kind in ("fourier", "maco") and init is not None:
        raise CnnvizError(f"the {kind} parameterization starts from noise: use pixels to start from an image")
    if kind == "fourier":
        return FourierImage(shape, device=device, seed=seed)
    if kind == "maco":
        return MacoImage(shape, device=device, seed=seed)
    raise CnnvizError(f"unknown parameterization {kind!r}: use pixels, fourier or maco")

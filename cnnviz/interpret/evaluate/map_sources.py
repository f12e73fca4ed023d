"""Attribution maps from any source: a cnnviz method, captum, pytorch-grad-cam, or ``.npy`` files on disk.

Every metric takes its maps through :func:`as_maps`, so a tensor, a numpy
array or a path is all the same to it. Maps smaller than the images (a CAM
at layer resolution) are resized bilinearly to the images' size.

Example:
    >>> images = torch.rand(2, 3, 32, 32)
    >>> as_maps(np.random.rand(2, 7, 7), images).shape
    torch.Size([2, 1, 32, 32])
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F

from cnnviz.zoo.core import CnnvizError

MapSource = Union[torch.Tensor, np.ndarray, str, Path]


def load_map(path: str | Path) -> torch.Tensor:
    """A map saved as ``.npy`` (any float or int array; no pickles are read)."""
    path = Path(path)
    if not path.is_file():
        raise CnnvizError(f"no map file {path}")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise CnnvizError(f"{path} is not a readable .npy array: {exc}") from None
    if not np.issubdtype(array.dtype, np.number):
        raise CnnvizError(f"{path} holds {array.dtype} values, not numbers")
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def read_maps(maps: MapSource) -> torch.Tensor:
    """Any map source as a detached float tensor, shape kept; a path is read with :func:`load_map`."""
    if isinstance(maps, (str, Path)):
        maps = load_map(maps)
    elif isinstance(maps, np.ndarray):
        maps = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))
    if not isinstance(maps, torch.Tensor):
        raise CnnvizError(f"maps must be a tensor, an array or a .npy path, got {type(maps).__name__}")
    maps = maps.detach().float()
    if not torch.isfinite(maps).all():
        raise CnnvizError("maps hold NaN or infinite values")
    return maps


def batch_of_maps(maps: MapSource) -> torch.Tensor:
    """Maps as ``(B, C, H, W)``: ``(H, W)`` and ``(C, H, W)`` are one image (what ``--npy`` writes)."""
    maps = read_maps(maps)
    if maps.dim() == 2:
        return maps[None, None]
    if maps.dim() == 3:
        return maps[None]
    if maps.dim() != 4:
        raise CnnvizError(f"maps must be (H, W), (C, H, W) or (B, C, H, W), got {tuple(maps.shape)}")
    return maps


def as_maps(maps: MapSource, images: torch.Tensor) -> torch.Tensor:
    """``maps`` as a float ``(B, C, H, W)`` tensor on the images' device, at the images' size.

    Accepts ``(H, W)`` and ``(C, H, W)`` for a single image, ``(B, H, W)``
    and ``(B, C, H, W)`` for a batch; a path is read with :func:`load_map`.
    """
    maps = read_maps(maps).to(images.device)
    batch = images.shape[0]
    if maps.dim() == 3 and maps.shape[0] == batch and batch > 1:
        maps = maps[:, None]
    maps = batch_of_maps(maps)
    if maps.shape[0] != batch:
        raise CnnvizError(f"maps {tuple(maps.shape)} do not match {batch} image(s): give (B, C, H, W), "
                          "(B, H, W), or (H, W) for one image")
    if maps.shape[-2:] != images.shape[-2:]:
        maps = F.interpolate(maps, size=images.shape[-2:], mode="bilinear", align_corners=False)
    return maps


def maps_in_folder(folder: str | Path, stems: Sequence[str]) -> dict[str, list[Path]]:
    """The ``.npy`` maps in ``folder`` for each image stem, by method: ``STEM-METHOD.npy`` (what
    ``cnnviz explain --npy`` writes) or ``STEM.npy`` (the method is then the folder's name).

    Returns:
        ``{method: [path per stem]}`` for each method found for every stem.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CnnvizError(f"--maps {folder} is not a folder")
    found: dict[str, dict[str, Path]] = {}
    for stem in stems:
        plain = folder / f"{stem}.npy"
        if plain.is_file():
            found.setdefault(folder.resolve().name, {})[stem] = plain
        for path in sorted(folder.glob(f"{glob_escape(stem)}-*.npy")):
            found.setdefault(path.stem[len(stem) + 1:], {})[stem] = path
    complete = {name: [paths[s] for s in stems] for name, paths in found.items() if len(paths) == len(stems)}
    if not complete:
        raise CnnvizError(f"no maps in {folder} for all of {', '.join(stems[:4])}{' ...' if len(stems) > 4 else ''}"
                          ": name them STEM-METHOD.npy (as cnnviz explain --npy does) or STEM.npy")
    return complete


def glob_escape(text: str) -> str:
    """``text`` with glob metacharacters escaped."""
    return "".join(f"[{c}]" if c in "*?[]" else c for c in text)

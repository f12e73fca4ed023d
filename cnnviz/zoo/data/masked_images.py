"""Images with concept masks, the data network dissection reads: a folder pair, Fashion-MNIST scenes, or tensors.

Each item is ``(image, mask)``: a float ``(C, H, W)`` image in [0, 1] and its mask of the same ``H x W``,
either a label map (int64 ``(H, W)``: value ``k > 0`` is concept ``k``, named by line ``k`` of
``concepts.txt``; 0 is no concept) or, for one file per concept, a stack (bool ``(K, H, W)``, layer ``k`` is
concept ``k``; concepts may overlap).

The folder format::

    ROOT/images/STEM.png       the image (any suffix zoo reads)
    ROOT/masks/STEM.png        its label map (gray or palette PNG, one value per concept)
    ROOT/concepts.txt          concept names, one a line: line 1 names value 1 (or inside masks/)
  or, one file per concept:
    ROOT/masks/STEM/CONCEPT.png   non-zero where CONCEPT is; the concepts are the file names seen

Masks are checked against their images (same size, every image has one) when the folder is opened, from
the files' headers, so a bad folder is refused before any pass over it.

Example:
    >>> import torch
    >>> data = MaskedImages.from_tensors(torch.rand(2, 1, 8, 8), torch.randint(0, 3, (2, 8, 8)), ["ball", "box"])
    >>> image, mask = data[0]
    >>> image.shape, mask.shape, data.concepts
    (torch.Size([1, 8, 8]), torch.Size([8, 8]), ('ball', 'box'))
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from cnnviz.zoo.core.errors import CnnvizError
from cnnviz.zoo.data.images import IMAGE_SUFFIXES, load_image, pillow_refusals
from cnnviz.zoo.data.scenes import Scenes, fashion_scenes

SCENES_NAME = "fashion-scenes"
SCENES_DEFAULT_COUNT = 500
SCENES_ITEMS = (1, 3)  # items per scene: room for one to three at fashion_seg's 64 px
CONCEPTS_FILE = "concepts.txt"
EXIF_ORIENTATION = 0x0112  # zoo.load_image turns the image upright; 5 to 8 swap its width and height


class MaskedImages(Dataset):
    """Images with concept masks (see the module doc for the item format).

    Attributes:
        concepts: the concept names; a label map's value ``k`` (from 1) and a stack's layer ``k - 1`` are
            ``concepts[k - 1]``.
        description: where the data came from, for records.
        in_memory: items are slices of tensors (no loader processes needed).
    """

    def __init__(self, concepts: Sequence[str], description: str, *, images: torch.Tensor | None = None,
                 masks: torch.Tensor | None = None, pairs: Sequence[tuple[Path, Path]] = (),
                 stacked: bool = False) -> None:
        self.concepts = tuple(concepts)
        self.description = description
        self.images, self.masks, self.pairs, self.stacked = images, masks, list(pairs), stacked
        self.in_memory = images is not None

    @classmethod
    def from_tensors(cls, images: torch.Tensor, masks: torch.Tensor, concepts: Sequence[str],
                     description: str = "tensors") -> MaskedImages:
        """Images ``(N, C, H, W)`` (float in [0, 1] or uint8) with label maps ``(N, H, W)`` (values 0 to
        ``len(concepts)``) or stacks ``(N, K, H, W)`` (bool, ``K == len(concepts)``)."""
        if images.dim() != 4 or len(images) == 0:
            raise CnnvizError(f"images must be a non-empty (N, C, H, W) batch, got shape {tuple(images.shape)}")
        if masks.dim() not in (3, 4) or len(masks) != len(images) or masks.shape[-2:] != images.shape[-2:]:
            raise CnnvizError(f"the masks ({tuple(masks.shape)}) do not match the images ({tuple(images.shape)}): "
                              "give one (H, W) label map or (K, H, W) stack per image, of the images' size")
        stacked = masks.dim() == 4
        if stacked and masks.shape[1] != len(concepts):
            raise CnnvizError(f"the mask stacks have {masks.shape[1]} layers but {len(concepts)} concepts are named")
        if not stacked:
            masks = masks.long()
            _check_labels(masks, len(concepts), description)
        return cls(concepts, description, images=images, masks=masks.bool() if stacked else masks, stacked=stacked)

    @classmethod
    def from_scenes(cls, scenes: Scenes, description: str = SCENES_NAME) -> MaskedImages:
        """Fashion-MNIST scenes: mask value ``label + 1`` is the item's class, 0 the background (no concept)."""
        return cls.from_tensors(scenes.images, scenes.masks, scenes.classes, description)

    @classmethod
    def from_folder(cls, images: str | Path, masks: str | Path | None = None) -> MaskedImages:
        """``images/STEM.*`` with ``masks/STEM.png`` (or ``masks/STEM/CONCEPT.png``); ``masks`` defaults to
        the ``masks`` folder beside ``images`` (or inside it, when ``images`` is the root of both)."""
        images, masks_dir = _folders(Path(images), None if masks is None else Path(masks))
        paths = sorted(p for p in images.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not paths:
            raise CnnvizError(f"the folder {images} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))}): "
                              "give the images/ folder of the mask folder format")
        mask_for = {p: _mask_path(masks_dir, p.relative_to(images).with_suffix("")) for p in paths}
        missing = [p.relative_to(images).as_posix() for p, m in mask_for.items() if m is None]
        if missing:
            shown = ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "")
            raise CnnvizError(f"{masks_dir} has no mask for {len(missing)} of {len(paths)} images ({shown}): each "
                              "images/STEM needs masks/STEM.png or a folder masks/STEM/ of CONCEPT.png files")
        stacked = {m.is_dir() for m in mask_for.values() if m is not None}
        if len(stacked) > 1:
            raise CnnvizError(f"{masks_dir} mixes label-map PNGs and per-concept folders: use one format")
        is_stack = stacked.pop()
        pairs = [(p, m) for p, m in mask_for.items() if m is not None]
        if is_stack:
            concepts = sorted({f.stem for _, m in pairs for f in m.iterdir() if f.suffix.lower() == ".png"})
        else:
            concepts = _concept_names(masks_dir)
        for image, mask in pairs:
            _check_size(image, mask)
        return cls(concepts, str(images), pairs=pairs, stacked=is_stack)

    def __len__(self) -> int:
        return len(self.images) if self.images is not None else len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.images is not None and self.masks is not None:
            return _float(self.images[index]), self.masks[index]
        image_path, mask_path = self.pairs[index]
        image = load_image(image_path)
        return image, self._read_mask(mask_path, tuple(image.shape[-2:]))

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]] | \
            tuple[torch.Tensor, torch.Tensor]:
        """A batch of tensors in one indexing operation (in memory), else the items one by one."""
        if self.images is not None and self.masks is not None:
            rows = torch.as_tensor(indices)
            return _float(self.images[rows]), self.masks[rows]
        return [self[i] for i in indices]

    def without_masks(self) -> Dataset:
        """The images alone, as a dataset of ``(image, None)`` items: a pass that needs no masks reads none."""
        return _ImagesOnly(self)

    def name(self, index: int) -> str:
        """The image's file name relative to its folder, or ``#index``."""
        if self.pairs:
            return self.pairs[index][0].name
        return f"#{index}"

    def _read_mask(self, path: Path, size: tuple[int, int]) -> torch.Tensor:
        if self.stacked:  # a concept without a file in this image is absent from it
            files = {f.stem: f for f in path.iterdir() if f.suffix.lower() == ".png"}
            return torch.from_numpy(np.stack([_read_values(files[c]) > 0 if c in files else np.zeros(size, bool)
                                              for c in self.concepts]))
        labels = torch.from_numpy(_read_values(path).astype(np.int64))
        _check_labels(labels, len(self.concepts), str(path))
        return labels


class _ImagesOnly(Dataset):
    """:meth:`MaskedImages.without_masks`."""

    def __init__(self, data: MaskedImages) -> None:
        self.data, self.in_memory = data, data.in_memory

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, None]:
        if self.data.images is not None:
            return _float(self.data.images[index]), None
        return load_image(self.data.pairs[index][0]), None

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, None]] | tuple[torch.Tensor, None]:
        if self.data.images is not None:
            return _float(self.data.images[torch.as_tensor(indices)]), None
        return [self[i] for i in indices]


def open_masked(data: MaskedImages | Scenes | str | Path, masks: str | Path | None = None, *,
                size: int = 64) -> MaskedImages:
    """The images with masks named by ``data``: a :class:`MaskedImages`, :class:`Scenes`, a folder (with
    ``masks``, or the mask folder beside it), or ``fashion-scenes[:COUNT]`` (``COUNT`` scenes, default
    500, of ``size`` pixels pasted from Fashion-MNIST's test split, seed 0).

    Example:
        >>> scenes = open_masked("fashion-scenes:3", size=64)  # doctest: +NEEDS_FASHION_MNIST
        >>> len(scenes), scenes.concepts[0], scenes[0][1].shape  # doctest: +NEEDS_FASHION_MNIST
        (3, 'T-shirt/top', torch.Size([64, 64]))
    """
    if isinstance(data, MaskedImages):
        return data
    if isinstance(data, Scenes):
        return MaskedImages.from_scenes(data)
    if not isinstance(data, (str, Path)):
        raise CnnvizError(f"data with masks is a folder, {SCENES_NAME}, Scenes or MaskedImages, "
                          f"got {type(data).__name__}")
    key, _, count = str(data).partition(":")
    if key.lower() == SCENES_NAME:
        if masks is not None:
            raise CnnvizError(f"{SCENES_NAME} bring their own masks: leave out the masks folder")
        if count and not (count.isdigit() and int(count) > 0):
            raise CnnvizError(f"{SCENES_NAME}:COUNT takes a positive number of scenes, got {count!r}")
        number = int(count) if count else SCENES_DEFAULT_COUNT
        scenes = fashion_scenes(number, split="test", canvas=size, items=SCENES_ITEMS, seed=0)
        return MaskedImages.from_scenes(scenes, f"{SCENES_NAME}:{number}, {size} px, test split, seed 0")
    return MaskedImages.from_folder(data, masks)


def _float(images: torch.Tensor) -> torch.Tensor:
    return images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()


def _folders(images: Path, masks: Path | None) -> tuple[Path, Path]:
    """The images folder and the masks folder (given, beside the images, or both inside a root)."""
    if not images.is_dir():
        raise CnnvizError(f"no folder {images}: give the images/ folder of the mask folder format "
                          f"(or {SCENES_NAME})")
    if masks is None and (images / "images").is_dir() and (images / "masks").is_dir():
        images, masks = images / "images", images / "masks"
    if masks is None:
        masks = images.parent / "masks"
        if not masks.is_dir():
            raise CnnvizError(f"no masks for {images}: give the masks folder (masks/STEM.png beside "
                              f"images/STEM.png), or put it at {masks}")
    if not masks.is_dir():
        raise CnnvizError(f"no masks folder {masks}: give a folder of masks/STEM.png beside images/STEM.png")
    return images, masks


def _mask_path(masks: Path, stem: Path) -> Path | None:
    """``masks/STEM.png`` or the folder ``masks/STEM/``; None when neither exists."""
    label_map, folder = masks / f"{stem.as_posix()}.png", masks / stem
    if label_map.is_file():
        return label_map
    return folder if folder.is_dir() else None


def _concept_names(masks: Path) -> list[str]:
    """The names in ``concepts.txt`` (inside the masks folder or beside it), one a line."""
    for place in (masks / CONCEPTS_FILE, masks.parent / CONCEPTS_FILE):
        if place.is_file():
            names = [line.strip() for line in place.read_text(encoding="utf-8").splitlines()]
            while names and not names[-1]:
                names.pop()
            if not names or any(not n for n in names):
                raise CnnvizError(f"{place} must name one concept a line, no blank lines (line k names value k)")
            return names
    raise CnnvizError(f"no {CONCEPTS_FILE} in {masks} or beside it: write one concept name a line "
                      "(line k names mask value k)")


def _read_values(path: Path) -> np.ndarray:
    """A mask file's pixel values as an integer ``(H, W)`` array (gray, 16-bit or palette indices)."""
    with pillow_refusals(str(path)), Image.open(path) as image:
        if image.mode not in ("L", "P", "I", "I;16", "1"):
            raise CnnvizError(f"{path} is a {image.mode} image: a mask holds one value a pixel (gray or "
                              "palette PNG)")
        return np.asarray(image).astype(np.int64)


def _check_size(image: Path, mask: Path) -> None:
    """Refuses a mask (or a per-concept file) whose size differs from its image's, reading headers only."""
    with pillow_refusals(str(image)), Image.open(image) as opened:
        size = opened.size[::-1] if opened.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8) else opened.size
    files = sorted(f for f in mask.iterdir() if f.suffix.lower() == ".png") if mask.is_dir() else [mask]
    for file in files:  # an empty per-concept folder: no concept in this image
        with pillow_refusals(str(file)), Image.open(file) as opened:
            if opened.size != size:
                raise CnnvizError(f"the mask {file} is {opened.size[0]}x{opened.size[1]} but its image {image} "
                                  f"is {size[0]}x{size[1]}: masks must have their image's size")


def _check_labels(labels: torch.Tensor, concepts: int, where: str) -> None:
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) > concepts):
        raise CnnvizError(f"{where} has mask values from {int(labels.min())} to {int(labels.max())} but "
                          f"{concepts} concepts are named: value k > 0 is line k of {CONCEPTS_FILE}, 0 no concept")

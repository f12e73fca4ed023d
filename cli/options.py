"""Arguments shared by several subcommands, and turning them into handles and batches."""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch

import zoo
from zoo.errors import CnnvizError
from zoo.handle import ModelHandle
from zoo.images import atomic_write

DEFAULT_MODEL = "efficientnet_lite0"


def add_model(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``--weights`` and ``--device``."""
    parser.add_argument("--model", "-m", default=DEFAULT_MODEL, metavar="NAME",
                        help=f"model from the zoo (default: {DEFAULT_MODEL}; list: cnnviz models)")
    parser.add_argument("--weights", metavar="PATH",
                        help="state dict to load instead of the model's pretrained weights")
    add_device(parser)


def add_device(parser: argparse.ArgumentParser) -> None:
    """``--device``."""
    parser.add_argument("--device", default=None, metavar="DEV",
                        help="cpu, cuda, cuda:N or mps (default: cuda, then mps, then cpu)")


def add_images(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """``--image`` (repeatable, several per flag)."""
    parser.add_argument("--image", "-i", nargs="+", action="extend", required=required, metavar="I",
                        help="image file, folder of images, or scikit-image sample name "
                             f"({', '.join(zoo.sample_names()[:6])}, ...); repeat for a batch")


def add_out(parser: argparse.ArgumentParser, default: str = "cnnviz-out") -> None:
    """``--out``."""
    parser.add_argument("--out", "-o", default=default, metavar="DIR",
                        help=f"folder to write into (created if needed; default: {default})")


def load_handle(args: argparse.Namespace) -> ModelHandle:
    """The handle named by ``--model`` / ``--weights`` / ``--device``."""
    weights: str | Path | None = args.weights if getattr(args, "weights", None) else "pretrained"
    return zoo.load(args.model, device=args.device, weights=weights)


def load_batch(args: argparse.Namespace, handle: ModelHandle) -> tuple[list[str], torch.Tensor]:
    """Names and the prepared batch of the ``--image`` sources."""
    named = zoo.load_images(args.image)
    return [name for name, _ in named], handle.prepare([image for _, image in named])


def output_dir(path: str) -> Path:
    """``--out`` as a folder, created; a file in the way is an input error."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise CnnvizError(f"--out {out} is a file: give a folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


def file_stem(text: str) -> str:
    """``text`` made safe as a file name (class names hold spaces and slashes)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


def unique_stems(names: Sequence[str]) -> list[str]:
    """Safe file stems, numbered where two names would collide."""
    stems = [file_stem(name) for name in names]
    counts, seen = Counter(stems), Counter()
    unique = []
    for stem in stems:
        seen[stem] += 1
        unique.append(f"{stem}-{seen[stem]}" if counts[stem] > 1 else stem)
    return unique


def write_json(path: Path, data: object) -> Path:
    """``data`` as indented JSON, written atomically."""
    return atomic_write(path, lambda f: f.write(json.dumps(data, indent=2).encode()))

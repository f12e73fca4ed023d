"""What keeping an upload costs: a 24 MP camera JPEG and a 6000 x 6000 PNG kept as the explorer keeps them now
(decoded bounded, a JPEG at reduced scale, downscaled, written as a PNG named by its hash) beside decoding them
whole as a float image (what the explorer kept in its memory cache before), side by side, with the bytes each
keeps, printed as markdown.

Usage:
    OMP_NUM_THREADS=1 python bench/uploads.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import io
import tempfile
from pathlib import Path

import torch
from PIL import Image
from timing import device_name, interleaved

from cnnviz import zoo
from cnnviz.explorer.images import MIN_UPLOAD_SIDE, keep_upload


def photo(size: tuple[int, int], format: str) -> bytes:
    """chelsea enlarged to ``size``, encoded as ``format``."""
    picture = Image.fromarray(zoo.data.SAMPLES["chelsea"]()).resize(size, Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    picture.save(buffer, format=format, **({"quality": 90} if format == "JPEG" else {"compress_level": 1}))
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"## Keeping an upload ({device_name(torch.device('cpu'))}, kept side {MIN_UPLOAD_SIDE} px)\n")
    print("| upload | bytes sent | kept now: s | decoded whole: s | ratio | kept now: bytes | decoded whole: bytes |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for label, size, format in (("24 MP JPEG", (6000, 4000), "JPEG"), ("6000x6000 PNG", (6000, 6000), "PNG")):
            content = photo(size, format)
            fresh = iter(range(10**6))
            source = Path(folder) / f"upload.{format.lower()}"
            source.write_bytes(content)
            times = interleaved({
                "kept": lambda: keep_upload(content, Path(folder) / str(next(fresh)), MIN_UPLOAD_SIDE),
                "whole": lambda: zoo.load_image(source),
            }, torch.device("cpu"), rounds=args.rounds)
            kept = keep_upload(content, Path(folder) / "last", MIN_UPLOAD_SIDE)
            kept_bytes = (Path(folder) / "last" / f"{kept.name.removeprefix('upload:')}.png").stat().st_size
            whole_bytes = zoo.load_image(source).nbytes
            print(f"| {label} | {len(content):,} | {times['kept']:.3f} | {times['whole']:.3f} | "
                  f"{times['whole'] / times['kept']:.1f}x | {kept_bytes:,} | {whole_bytes:,} |")


if __name__ == "__main__":
    main()

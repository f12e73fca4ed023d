"""Style transfer: seconds and final losses for L-BFGS and Adam, with and without softmax smoothing.

Each run stylizes skimage's ``chelsea`` with ``immunohistochemistry`` on
efficientnet_lite0 from the content image; the time covers everything
(targets, every step, the loss bookkeeping). The issue's speed target is
512 px, 300 L-BFGS steps in <= 10 s on one GPU: run with ``--device cuda
--sizes 512`` where there is one. With ``--figures`` it also writes the
side-by-side picture (content | style | plain Gram | softmax-smoothed) and
the loss curves to docs/images/.

Usage:
    OMP_NUM_THREADS=1 python bench/style.py [--device cpu] [--sizes 256 512] [--steps 300]
        [--steps-512 50] [--figures] [--json out.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
from pathlib import Path

import torch
import torch.nn.functional as F

from cnnviz import zoo
from cnnviz.interpret.optimize.style import StyleResult, fit_side, style_transfer
from cnnviz.interpret.views.charts import Series, line_chart, to_array
from cnnviz.interpret.views.pixels import caption, hstack, to_uint8

DOCS = Path(__file__).resolve().parent.parent / "docs" / "images"
CONTENT, STYLE = "chelsea", "immunohistochemistry"
COLORS = {("lbfgs", True): (214, 39, 40), ("lbfgs", False): (255, 152, 150),
          ("adam", True): (31, 119, 180), ("adam", False): (158, 198, 232)}


def run(handle: zoo.ModelHandle, size: int, steps: int, optimizer: str, smooth: bool) -> StyleResult:
    content = zoo.load_image(CONTENT)[None].to(handle.device)
    return style_transfer(handle, content, style=zoo.load_image(STYLE), size=size, steps=steps,
                          optimizer=optimizer, smooth=smooth, progress=False)


def shown(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(image[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0].clamp(0, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256])
    parser.add_argument("--steps", type=int, default=300, help="steps at sizes below 512")
    parser.add_argument("--steps-512", type=int, default=300, help="steps at 512 px and more")
    parser.add_argument("--figures", action="store_true", help="write docs/images/style-*.png")
    parser.add_argument("--json", default=None, help="also write the rows as JSON")
    args = parser.parse_args()

    handle = zoo.load("efficientnet_lite0", device=args.device)
    device = str(handle.device)
    if handle.device.type == "cuda":
        device += f" ({torch.cuda.get_device_name(handle.device)})"
    print(f"# style transfer, efficientnet_lite0, {CONTENT} + {STYLE}, from the content image")
    print(f"# device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"{platform.processor() or platform.machine()}, {datetime.date.today()}")
    print("| size | optimizer | smoothing | steps | seconds | s/step | style loss (start -> end) | "
          "content loss (end) | total (start -> end) |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows, results = [], {}
    run(handle, 64, 2, "lbfgs", True)  # warm-up (allocator, kernels)
    for size in args.sizes:
        steps = args.steps if size < 512 else args.steps_512
        for optimizer in ("lbfgs", "adam"):
            for smooth in (True, False):
                result = run(handle, size, steps, optimizer, smooth)
                results[(size, optimizer, smooth)] = result
                h = result.history
                row = {"size": size, "optimizer": optimizer, "smoothing": smooth, "steps": steps,
                       "seconds": round(result.seconds, 2), "s_per_step": round(result.seconds / steps, 4),
                       "style_start": float(h["style"][0, 0]), "style_end": float(h["style"][-1, 0]),
                       "content_end": float(h["content"][-1, 0]), "total_start": float(h["total"][0, 0]),
                       "total_end": float(h["total"][-1, 0]), "device": device}
                rows.append(row)
                print(f"| {size} | {optimizer} | {'softmax' if smooth else 'plain Gram'} | {steps} | "
                      f"{row['seconds']:.1f} | {row['s_per_step']:.3f} | {row['style_start']:.3g} -> "
                      f"{row['style_end']:.3g} | {row['content_end']:.3g} | {row['total_start']:.4g} -> "
                      f"{row['total_end']:.4g} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    if args.figures:
        size = args.sizes[0]
        plain, smoothed = results[(size, "lbfgs", False)], results[(size, "lbfgs", True)]
        h, w = smoothed.images.shape[-2:]
        style = zoo.load_image(STYLE)
        panel = hstack([caption(to_uint8(shown(zoo.load_image(CONTENT), (h, w))), f"content: {CONTENT}"),
                        caption(to_uint8(shown(style, fit_side(*style.shape[-2:], h))), f"style: {STYLE}"),
                        caption(to_uint8(plain.images[0]), "plain Gram (Gatys)"),
                        caption(to_uint8(smoothed.images[0]), "softmax-smoothed (Wang et al.)")])
        zoo.save_image(DOCS / f"style-{CONTENT}-{STYLE}.png", panel)
        charts = []
        for term in ("total", "style"):
            series = [Series(f"{opt} {'softmax' if sm else 'plain'}", list(range(1, len(r.history[term]) + 1)),
                             [math.log10(max(v, 1e-12)) for v in r.history[term][:, 0].tolist()], COLORS[(opt, sm)])
                      for (s, opt, sm), r in results.items() if s == size]
            charts.append(to_array(line_chart(series, title=f"{term} loss, lite0, {size} px ({device.split(' ')[0]})",
                                     xlabel="step", ylabel=f"log10 {term}", size=(460, 300))))
        zoo.save_image(DOCS / "style-losses.png", hstack(charts))
        print(f"wrote {DOCS}/style-{CONTENT}-{STYLE}.png and style-losses.png")


if __name__ == "__main__":
    main()

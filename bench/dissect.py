"""Network dissection's cost against the model's plain forward pass over the same images, per layer.

``interpret.dissect`` makes two passes over the data up to the layer (the exact top quantile, then the
overlaps at mask resolution: bilinear upsampling, thresholding, intersections per concept); the anchor is the
whole model's forward pass over the same images, in batches of the same size already in memory. Cases run side
by side in rounds (``bench/timing.py``), fashion_seg over Fashion-MNIST scenes made once before timing. The
detectors each class has in the last layers are printed too (the report's numbers).

Usage:
    python bench/dissect.py [--scenes 1000] [--rounds 2] [--device cpu] [--layers features.0,...,classifier]
"""

from __future__ import annotations

import argparse
import datetime

import torch
from timing import device_name, interleaved

from cnnviz import interpret, zoo
from cnnviz.interpret.core import auto_batch_size
from cnnviz.zoo.data import FASHION_MNIST_CLASSES, open_masked

LAYERS = ("features.0", "features.1", "features.2", "features.3", "classifier")
LAST = ("features.3", "classifier")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--device", default=None)
    parser.add_argument("--layers", default=",".join(LAYERS))
    args = parser.parse_args()
    handle = zoo.load("fashion_seg", device=args.device)
    data = open_masked(f"fashion-scenes:{args.scenes}", size=handle.input_size)
    images = data.images.to(handle.device)  # type: ignore[union-attr]
    batch = auto_batch_size(handle)
    layers = args.layers.split(",")
    found: dict[str, interpret.Dissection] = {}

    def forward() -> None:
        with torch.inference_mode():
            for start in range(0, len(images), batch):
                handle(images[start:start + batch])

    def dissection(layer: str):
        def run() -> None:
            found[layer] = interpret.dissect(handle, layer, data, batch_size=batch, progress=False)
        return run

    seconds = interleaved({"forward": forward, **{layer: dissection(layer) for layer in layers}}, handle.device,
                          rounds=args.rounds)
    print(f"fashion_seg, {args.scenes} scenes of {handle.input_size} px, batch {batch}, "
          f"{device_name(handle.device)}, {datetime.date.today()}")
    print(f"{'case':<12} {'seconds':>8} {'x forward':>10} {'detectors':>10}")
    print(f"{'forward':<12} {seconds['forward']:>8.3f} {1.0:>10.2f}")
    for layer in layers:
        print(f"{layer:<12} {seconds[layer]:>8.3f} {seconds[layer] / seconds['forward']:>10.2f} "
              f"{len(found[layer].detectors):>10}")
    last = [layer for layer in LAST if layer in found]
    if last:
        per_class = {c: sum(found[layer].counts.get(c, 0) for layer in last) for c in FASHION_MNIST_CLASSES}
        print(f"detectors per class in {' + '.join(last)}: {per_class}")
        for layer in last:
            print(f"  {layer}: {found[layer].counts}")


if __name__ == "__main__":
    main()

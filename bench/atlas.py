"""Neuron-atlas throughput against the model's own forward throughput, same device, same batch size.

The atlas pass is timed end to end (opening the data, the receptive-field
arithmetic, loading and collating batches, the forward pass up to the layer,
the spatial max and the running top-k merges, the final gather); the
forward throughput is the bare model on batches already on the device. The
atlas stops the forward pass at its layer, so it is also compared with the
forward pass up to that layer, which is the fair limit for a shallow layer.

Usage:
    python bench/atlas.py [--device cuda] [--images 512] [--batch-size 32] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from timing import sync

from cnnviz import zoo
from cnnviz.interpret.core.activations import layer_output
from cnnviz.interpret.inside.atlas.scan import neuron_atlas
from cnnviz.zoo.data import TensorImages


@dataclass
class Case:
    """One model, layer and dataset to time."""

    model: str
    layer: str
    data: str
    handle: zoo.ModelHandle
    dataset: TensorImages


def best_rate(run: Callable[[], object], images: int, device: torch.device, repeats: int) -> float:
    """Best images/s of ``repeats`` timed runs after one warm-up."""
    run()
    sync(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return images / best


def fashion_case(device: str | None) -> Case:
    import cnnviz.zoo  # noqa: F401  (registers fashion_cnn)
    from cnnviz.zoo.data import DATASETS, read_idx_split

    try:
        handle, name = zoo.load("fashion_cnn", device=device), "fashion_cnn"
    except zoo.CnnvizError:  # weights not shipped yet: the same architecture, randomly initialized
        from cnnviz.zoo.models import CnnSpec, cnn_handle
        from cnnviz.zoo.data import FASHION_MEAN, FASHION_STD

        handle = cnn_handle(CnnSpec("tutorial_cnn"), mean=FASHION_MEAN, std=FASHION_STD, seed=0)
        handle, name = handle.to(zoo.pick_device(device)).eval(), "tutorial_cnn (random)"
    test = read_idx_split(DATASETS["fashion-mnist"].default_dir, "t10k")
    return Case(name, "features.block3.act", "Fashion-MNIST test (10k, 28 px)", handle,
                TensorImages(test.images, test.labels, description="fashion-mnist:test"))


def photo_cases(device: str | None, images: int) -> list[Case]:
    handle = zoo.load("efficientnet_lite0", device=device)
    pixels = torch.randint(0, 256, (images, 3, 224, 224), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    data = TensorImages(pixels, description=f"{images} random 224 px images in memory")
    return [Case("efficientnet_lite0", layer, data.description, handle, data) for layer in ("head", "blocks.5")]


def measure(case: Case, batch_size: int, repeats: int) -> dict[str, object]:
    handle, dataset, device = case.handle, case.dataset, case.handle.device
    n = len(dataset)
    batches = [dataset.__getitems__(list(range(s, min(s + batch_size, n)))).to(device)
               for s in range(0, n, batch_size)]

    def forward() -> None:
        with torch.inference_mode():
            for x in batches:
                handle(x)

    def to_layer() -> None:
        with torch.inference_mode():
            for x in batches:
                layer_output(handle, case.layer, x)

    def atlas() -> None:
        neuron_atlas(handle, case.layer, dataset, top=9, batch_size=batch_size, progress=False)

    # Interleaved, best of each: a shared machine's load hits all three alike.
    rates: dict[str, float] = {"forward": 0.0, "to_layer": 0.0, "atlas": 0.0}
    for _ in range(repeats):
        rates["forward"] = max(rates["forward"], best_rate(forward, n, device, 1))
        rates["to_layer"] = max(rates["to_layer"], best_rate(to_layer, n, device, 1))
        rates["atlas"] = max(rates["atlas"], best_rate(atlas, n, device, 1))
    return {"model": case.model, "layer": case.layer, "data": case.data, "images": n, "batch": batch_size,
            **rates, "atlas/forward": rates["atlas"] / rates["forward"],
            "atlas/to_layer": rates["atlas"] / rates["to_layer"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None)
    parser.add_argument("--images", type=int, default=None, help="random photos for lite0 (default: 256 CPU, 4096 GPU)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 32 on CPU, 256 on GPU")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads on CPU")
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = zoo.pick_device(args.device)
    gpu = device.type == "cuda"
    images = args.images or (4096 if gpu else 256)
    batch_size = args.batch_size or (256 if gpu else 32)
    cases = photo_cases(args.device, images) + [fashion_case(args.device)]
    rows = [measure(case, batch_size, args.repeats) for case in cases]

    name = torch.cuda.get_device_name(device) if gpu else \
        f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    print(f"## Neuron atlas throughput: {name}, torch {torch.__version__}, {datetime.date.today()}")
    print("top-9 and bottom-9 per channel; atlas timed end to end from data in memory\n")
    print("| model | layer | data | batch | forward img/s | forward to layer img/s | atlas img/s "
          "| atlas / forward | atlas / to layer |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['layer']} | {r['data']} | {r['batch']} | {r['forward']:.1f} | "
              f"{r['to_layer']:.1f} | {r['atlas']:.1f} | {r['atlas/forward']:.2f} | {r['atlas/to_layer']:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": name, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()

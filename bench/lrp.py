"""LRP and concept maps against the forward+backward limit and against zennit / zennit-crp, in one run.

Cases, interleaved (bench/timing.py) on the same batch of photos:

- ``limit``: one forward and backward pass of the model to its input (what any backward method costs at least);
- ``canonize``: the deep copy, trace and batch-norm folding, which a call now pays once per model (the copy is kept
  while the weights stay the same);
- ``cnnviz lrp``: ``interpret.lrp`` (kept canonized copy, weights checked, zennit's rules attached, one pass);
- ``zennit``: zennit's Gradient attributor with its own composite and rules, on the same canonized network;
- ``limit x (K+1)``: K+1 backward passes (the unconditional pass and K masked ones) as one batch of B*(K+1) rows;
- ``cnnviz concepts K``: ``interpret.concept_relevance(..., channels=K)``;
- ``zennit-crp K``: CondAttribution with K conditions on the same canonized network.

Usage:
    python bench/lrp.py [--device cuda] [--photos chelsea coffee] [--k 8] [--layer blocks.12] [--rounds 3]
"""

from __future__ import annotations

import argparse
import datetime
import warnings

import torch
from limits import backward_case
from timing import device_name, interleaved

from cnnviz import interpret
from cnnviz import zoo
from cnnviz.interpret.attribution.canonize import canonized
from cnnviz.interpret.attribution.lrp import relevance_network


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--photos", nargs="+", default=["chelsea", "coffee"])
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--layer", default="blocks.12")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    from crp.attribution import CondAttribution
    from zennit.attribution import Gradient
    from zennit.composites import COMPOSITES

    handle = zoo.load(args.model, device=args.device)
    images = handle.prepare([zoo.load_image(name) for name in args.photos])
    batch, k = images.shape[0], args.k
    target = handle(images).argmax(-1)
    normalized = ((images - handle.mean) / handle.std).detach()
    onehot = torch.eye(len(handle.classes), device=handle.device)[target]
    network = relevance_network(handle)  # zennit's own path needs a canonized network too; made once, outside

    def zennit_lrp() -> None:  # zennit's own composite and rules (ours skips half of z+ after a ReLU)
        with Gradient(network, COMPOSITES["epsilon_plus_flat"]()) as attributor:
            attributor(normalized, lambda out: out * onehot)

    found = interpret.concept_relevance(handle, images, target.tolist(), layer=args.layer, channels=k)
    conditions = [{"y": [int(target[b])], f"network.{args.layer}": [int(c)]} for b in range(batch)
                  for c in found.channels[b]]
    crp = CondAttribution(network, no_param_grad=True)

    def zennit_crp() -> None:
        crp(normalized.repeat_interleave(k, 0).requires_grad_(True), conditions, COMPOSITES["epsilon_plus_flat"]())

    with zoo.core.preserve(handle):
        cases = {
            "limit (forward+backward)": backward_case(handle, images),
            "canonize (copy, trace, fold: once per model)": lambda: canonized(handle.model),
            "cnnviz lrp": lambda: interpret.lrp(handle, images, target.tolist()),
            "zennit Gradient (canonized once, outside)": zennit_lrp,
            f"limit x {k + 1} (one batch)": backward_case(handle, images.repeat_interleave(k + 1, 0)),
            f"cnnviz concepts K={k}": lambda: interpret.concept_relevance(handle, images, target.tolist(),
                                                                         layer=args.layer, channels=k),
            f"zennit-crp CondAttribution K={k} (masked passes only)": zennit_crp,
        }
        seconds = interleaved(cases, handle.device, rounds=args.rounds)
    limit, limit_k = seconds["limit (forward+backward)"], seconds[f"limit x {k + 1} (one batch)"]
    print(f"\n## LRP and concept maps: {args.model}, {batch} photos, layer {args.layer}, "
          f"{device_name(handle.device)}, {datetime.date.today()}\n")
    print("| case | seconds | limit / case |")
    print("|---|---:|---:|")
    for name, value in seconds.items():
        reference = limit_k if "K=" in name or "x " in name else limit
        print(f"| {name} | {value:.3f} | {reference / value:.2f} |")


if __name__ == "__main__":
    main()

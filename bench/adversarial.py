"""Attack success rates and fooling-image speed, as the issue specifies, printed as markdown.

- PGD on efficientnet_lite0 with the scikit-image photos it classifies correctly
  (each in a few views: centre crop, mirrored, whole image squashed, zoomed in),
  and on fashion_cnn with correctly classified Fashion-MNIST test images:
  untargeted at eps = 4/255 with 10 steps, targeted to a random other class at
  eps = 8/255 with 40 steps; an eps sweep on Fashion-MNIST; captum's PGD with
  the same settings as a reference on the same images.
- Fooling images: lite0 classes spread over the 1000, and all 10 Fashion-MNIST
  classes, with seconds, steps per class and the lowest confidence.

Usage:
    OMP_NUM_THREADS=1 python bench/adversarial.py [--device cuda] [--parts photos fashion fool]
        [--fashion-images 1000] [--fool-classes 16]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time

import torch
import torch.nn.functional as F
from limits import best_limit, limit_cases
from timing import interleaved, sync

from cnnviz import zoo
from cnnviz.interpret.attack.adversarial import attack_report, pgd
from cnnviz.interpret.attack.fooling import fool
from cnnviz.zoo.core import preserve

# Photos whose content has an ImageNet class, with the classes we accept as correct.
PHOTOS = {
    "chelsea": {"tabby", "tiger cat", "Egyptian cat"},
    "coffee": {"espresso", "cup"},
    "rocket": {"missile", "projectile", "space shuttle"},
    "motorcycle": {"moped", "motor scooter"},  # ImageNet has no 'motorcycle'; these are its nearest classes
    "camera": {"tripod", "reflex camera"},  # the cameraman's camera on its tripod
}
FASHION = "/usr/share/datasets/fashion-mnist"


def views(image: torch.Tensor, handle: zoo.ModelHandle) -> list[torch.Tensor]:
    """Centre crop, mirrored, whole image resized to a square, and zoomed to the central 70%."""
    _, h, w = image.shape
    zoomed = image[:, int(0.15 * h):int(0.85 * h), int(0.15 * w):int(0.85 * w)]
    return [handle.prepare([image])[0], handle.prepare([image.flip(-1)])[0],
            handle.prepare([image], crop=False)[0], handle.prepare([zoomed])[0]]


def photo_batch(handle: zoo.ModelHandle) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Correctly classified views of the photos, their predicted classes, and how many photos they came from."""
    kept, labels, sources = [], [], set()
    for name, accepted in PHOTOS.items():
        batch = torch.stack(views(zoo.load_image(name), handle))
        with torch.no_grad():
            predicted = handle(batch).argmax(-1)
        for image, label in zip(batch, predicted.tolist()):
            if handle.class_name(label) in accepted:
                kept.append(image)
                labels.append(label)
                sources.add(name)
    return torch.stack(kept), torch.tensor(labels, device=handle.device), len(sources)


def fashion_batch(handle: zoo.ModelHandle, count: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The first ``count`` correctly classified Fashion-MNIST test images (and how many were looked at)."""
    data = zoo.data.read_idx_split(FASHION, "t10k")
    images = data.images.float().div(255).to(handle.device)
    labels = data.labels.to(handle.device)
    with torch.no_grad():
        right = torch.cat([handle(images[i:i + 2000]).argmax(-1) for i in range(0, len(images), 2000)]) == labels
    seen = int(torch.nonzero(right)[count - 1]) + 1 if int(right.sum()) >= count else len(right)
    return images[right][:count], labels[right][:count], seen


def random_targets(labels: torch.Tensor, classes: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    shift = torch.randint(1, classes, (len(labels),), generator=generator).to(labels.device)
    return (labels + shift) % classes


def timed_attack(handle, images, target, batch_size, **kwargs) -> tuple[float, float, float]:
    """Success rate, seconds, largest L-inf norm (in 1/255) of one PGD run."""
    sync(handle.device)
    start = time.perf_counter()
    adversarial = pgd(handle, images, target, batch_size=batch_size, progress=False, **kwargs)
    sync(handle.device)
    seconds = time.perf_counter() - start
    report = attack_report(handle, images, adversarial, target)
    return report.success_rate, seconds, float(report.linf.max()) * 255


def captum_rate(handle, images, labels, target, eps, steps, batch_size) -> float:
    """captum's PGD with the same settings (random start, step 2.5 eps / steps, cross-entropy)."""
    from captum.robust import PGD

    attack = PGD(handle, loss_func=lambda out, y: F.cross_entropy(out, y, reduction="none"),
                 lower_bound=0.0, upper_bound=1.0)
    goal = labels if target is None else target
    out = []
    with preserve(handle):
        torch.manual_seed(0)
        for i in range(0, len(images), batch_size):
            out.append(attack.perturb(images[i:i + batch_size], radius=eps, step_size=2.5 * eps / steps,
                                      step_num=steps, target=goal[i:i + batch_size], targeted=target is not None,
                                      random_start=True, norm="Linf").detach())
    adversarial = torch.cat(out)
    return attack_report(handle, images, adversarial, target).success_rate


def attack_rows(name: str, handle, images, labels, batch_size, sweep: tuple[tuple[str, int, int], ...],
                captum_for: tuple[str, ...]) -> list[str]:
    rows = []
    classes = len(handle.classes) if handle.classes else 1000
    targets = random_targets(labels, classes)
    settings = [("untargeted", None, 4, 10), ("targeted, random class", targets, 8, 40)]
    settings += [(kind, None if kind == "untargeted" else targets, e, n) for kind, e, n in sweep]
    for kind, target, eps255, steps in settings:
        rate, seconds, linf = timed_attack(handle, images, target, batch_size, eps=eps255 / 255, steps=steps)
        reference = (f"{captum_rate(handle, images, labels, target, eps255 / 255, steps, batch_size):.1%}"
                     if (kind, eps255) in {("untargeted", 4), ("targeted, random class", 8)}
                     and kind in captum_for else "-")
        rows.append(f"| {name} | {len(images)} | {kind} | {eps255}/255 | {steps} | **{rate:.1%}** | {reference} | "
                    f"{linf:.2f}/255 | {seconds:.1f} |")
        print(rows[-1], flush=True)
    return rows


def fool_row(name: str, handle, classes, batch_size, refill: bool = True,
             limits: tuple[float, float] | None = None) -> str:
    result = fool(handle, classes, batch_size=batch_size, refill=refill, progress=False)
    steps = result.steps[result.steps >= 0].float()
    mode = "refilled rows" if refill else "chunks (wait for the slowest)"
    # Useful forward+backward passes: a class that passed after k updates was evaluated k + 1 times, one that
    # never passed steps + 1 times. Rows idling in a chunk are not useful work.
    passes = float((result.steps[result.steps >= 0] + 1).sum()) + float((result.steps < 0).sum()) * 201
    fractions = (" | ".join(f"{passes / result.seconds / limit:.2f}" for limit in limits) if limits
                 else " | ")
    row = (f"| {name} | {mode} | {len(classes)} | {int(result.reached.sum())}/{len(classes)} | "
           f"{float(result.confidence.min()):.4f} | {steps.median():.0f} / {steps.mean():.1f} / {steps.max():.0f} | "
           f"{result.seconds:.1f} | {result.seconds / len(classes):.2f} | {fractions} |")
    print(row, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None)
    parser.add_argument("--parts", nargs="+", default=["photos", "fashion", "fool"],
                        choices=["photos", "fashion", "fool"])
    parser.add_argument("--fashion-images", type=int, default=1000)
    parser.add_argument("--fool-classes", type=int, default=16, help="lite0 classes, spread over the 1000")
    parser.add_argument("--captum", action=argparse.BooleanOptionalAction, default=True,
                        help="also run captum's PGD on the same images (default: yes)")
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args()

    lite0 = zoo.load("efficientnet_lite0", device=args.device)
    fashion = zoo.load("fashion_cnn", device=args.device)
    device = lite0.device
    gpu = device.type == "cuda"
    name = torch.cuda.get_device_name(device) if gpu else f"CPU ({platform.processor() or platform.machine()})"
    threads = os.environ.get("OMP_NUM_THREADS", str(torch.get_num_threads()))
    header = (f"Device: {name}, torch {torch.__version__}, {threads} thread(s), "
              f"{datetime.date.today().isoformat()}")
    print(header, flush=True)
    out: dict[str, list[str]] = {"header": [header]}

    attack_head = ["| model | images | attack | eps | steps | success | captum PGD | max Linf | seconds |",
                   "|---|---|---|---|---|---|---|---|---|"]
    rows: list[str] = []
    if "photos" in args.parts:
        images, labels, photos = photo_batch(lite0)
        print(f"lite0: {len(images)} correctly classified views of {photos} photos "
              f"({', '.join(PHOTOS)})", flush=True)
        out["photos"] = [f"{len(images)} views of {photos} photos"]
        # captum only for the untargeted run on CPU: its targeted run would double a 4-minute row
        rows += attack_rows("efficientnet_lite0", lite0, images, labels, 64 if gpu else 32, (),
                            (("untargeted", "targeted, random class") if gpu else ("untargeted",))
                            if args.captum else ())
    if "fashion" in args.parts:
        images, labels, seen = fashion_batch(fashion, args.fashion_images)
        print(f"fashion_cnn: {len(images)} correctly classified of the first {seen} test images", flush=True)
        out["fashion"] = [f"{len(images)} of the first {seen}"]
        sweep = (("untargeted", 8, 10), ("untargeted", 16, 10), ("untargeted", 32, 10),
                 ("targeted, random class", 32, 40))
        rows += attack_rows("fashion_cnn", fashion, images, labels, 1000, sweep,
                            ("untargeted", "targeted, random class") if args.captum else ())
    if rows:
        print("\n".join(attack_head + rows))
        out["attacks"] = attack_head + rows

    if "fool" in args.parts:
        head = ["| model | batches | classes | reached 99.6% | min confidence | steps median / mean / max | "
                "seconds | s per class | of the fp32 fwd+bwd limit | of the fwd+bwd limit (all paths) |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        spread = torch.linspace(0, 999, args.fool_classes).round().long().tolist()
        image = lite0.prepare([zoo.load_image("chelsea")])
        seconds = interleaved(limit_cases(lite0, image, [4, 8, 16], backward=True), lite0.device, rounds=2)
        limits = (best_limit(seconds, "backward", fp32_only=True)[0], best_limit(seconds, "backward")[0])
        print(f"lite0 forward+backward limits: fp32 {limits[0]:.1f} img/s, all paths {limits[1]:.1f} img/s "
              f"({best_limit(seconds, 'backward')[1]})", flush=True)
        # Side by side in one run: the queue that refills rows as images pass, and the chunks it replaced.
        fool_rows = [fool_row("efficientnet_lite0", lite0, spread, None, refill, limits) for refill in (False, True)]
        fool_rows += [fool_row("fashion_cnn", fashion, list(range(10)), None, refill) for refill in (False, True)]
        print("\n".join(head + fool_rows))
        out["fooling"] = head + fool_rows
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()

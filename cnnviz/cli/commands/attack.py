"""``cnnviz attack`` (adversarial examples of photos) and ``cnnviz fool`` (fooling images per class)."""

from __future__ import annotations

import argparse
import time
from fractions import Fraction
from pathlib import Path

from cnnviz.cli.method_options import add_flag, add_function_options
from cnnviz.cli.options import add_images, add_model, add_out, load_batch, load_handle, output_dir
from cnnviz.cli.registry import Run, command
from cnnviz.interpret import get_method, methods
from cnnviz.interpret.attack import FoolingResult, attack_report, fool, parse_classes, pgd
from cnnviz.interpret.core import class_index, option_specs, session
from cnnviz.interpret.views import attack_panel, picture_grid, to_uint8
from cnnviz.zoo import save_array, save_image
from cnnviz.zoo.core import atomic_write
from cnnviz.zoo.handle import ModelHandle

FAMILY = "adversarial"
SHEET = 64  # fooling images per contact sheet
L2_EPS = 0.5  # an L2 budget when --norm l2 is given without --eps (pgd's default eps is an L-inf one)
PGD_OPTIONS = option_specs(pgd, skip=())


def parse_eps(text: str) -> float:
    """``0.0157`` or ``4/255``."""
    try:
        value = float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"invalid eps {text!r}: give a number like 0.0157 or a fraction like 4/255")
    return value


def _scale(size: int) -> int:
    """Enlarge small inputs (28 px Fashion-MNIST) so captions fit; nearest-neighbour, no blur."""
    return max(1, 224 // size)


def _stems(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    stems = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        stems.append(name if names.count(name) == 1 else f"{name}-{seen[name]}")
    return stems


@command("attack", "adversarial examples: FGSM / PGD, L-inf or L2, untargeted or targeted", order=40,
         description="Perturb photos within an epsilon-ball until the model changes its mind, in [0, 1] pixel\n"
                     "space. Writes per image a panel (image | amplified difference | adversarial image, with\n"
                     "classes, confidences and perturbation norms) and the adversarial image itself.\n\n"
                     "methods:\n" + "\n".join(f"  {m.name:<8} {m.summary}" for m in methods(FAMILY)) + "\n\n"
                     "examples:\n"
                     "  cnnviz attack --image chelsea\n"
                     "  cnnviz attack --image coffee --target goldfish --eps 8/255 --steps 40\n"
                     "  cnnviz attack --image chelsea --method fgsm --eps 2/255\n"
                     "  cnnviz attack --image chelsea --norm l2 --eps 0.5\n"
                     "  cnnviz attack --model fashion_cnn --image photo.png --eps 0.1")
def attack(parser: argparse.ArgumentParser) -> Run:
    add_images(parser)
    add_model(parser)
    add_out(parser)
    parser.add_argument("--method", default="pgd", choices=[m.name for m in methods(FAMILY)],
                        help="attack (default: pgd)")
    parser.add_argument("--target", "-t", metavar="CLASS",
                        help="class to reach, index or name (default: untargeted, leave the predicted class)")
    eps = PGD_OPTIONS["eps"]
    add_flag(parser, "--eps", eps, f"{eps.help.rstrip('.')} (default: 4/255 for linf, {L2_EPS} for l2)", dest="eps",
             metavar="E", parse=parse_eps)
    add_function_options(parser, pgd, ["norm", "steps", "alpha", "random_start", "seed", "stop_on_success"],
                         metavars={"steps": "N", "alpha": "A"}, parse={"alpha": parse_eps})
    parser.add_argument("--npy", action="store_true", help="also write the exact float adversarial images as .npy")

    def run(args: argparse.Namespace) -> None:
        eps = args.eps if args.eps is not None else (PGD_OPTIONS["eps"].default if args.norm == "linf" else L2_EPS)
        handle = load_handle(args)
        target = class_index(handle, args.target) if args.target is not None else None
        names, batch = load_batch(args, handle)
        out = output_dir(args.out)
        chosen = get_method(args.method, FAMILY)
        options: dict[str, object] = {"eps": eps, "norm": args.norm}
        if args.method == "pgd":
            options.update(steps=args.steps, alpha=args.alpha, random_start=args.random_start, seed=args.seed,
                           stop_on_success=args.stop_on_success)
        start = time.perf_counter()
        adversarial = chosen.fn(handle, batch, target, **options)
        seconds = time.perf_counter() - start
        report = attack_report(handle, batch, adversarial, target)
        scale = _scale(handle.input_size)
        for i, stem in enumerate(_stems(names)):
            base = f"{stem}-{args.method}"
            save_image(out / f"{base}.png", attack_panel(handle, batch, adversarial, report, i, scale=scale))
            save_image(out / f"{base}-adversarial.png", to_uint8(adversarial[i]))
            if args.npy:
                save_array(out / f"{base}-adversarial.npy", adversarial[i])
            verdict = "fooled" if bool(report.success[i]) else "NOT fooled"
            print(f"{out / base}.png  {names[i]}: {handle.class_name(int(report.original[i]))} "
                  f"{report.original_confidence[i]:.1%} -> {handle.class_name(int(report.adversarial[i]))} "
                  f"{report.adversarial_confidence[i]:.1%}  Linf {report.linf[i] * 255:.2f}/255  "
                  f"L2 {report.l2[i]:.3f}  {verdict}")
        print(f"{args.method} {args.norm} eps {eps:.4f} ({eps * 255:.2f}/255): {int(report.success.sum())}/"
              f"{len(names)} succeeded in {seconds:.2f} s on {handle.device}")

    return run


@command("fool", "fooling images: noise the model labels with >= 99.6% confidence, for any classes", order=41,
         description="Fooling images (Nguyen et al. 2015): from noise or a blank image, gradient ascent with L2\n"
                     "decay until the model gives each chosen class at least --threshold. Every class is one\n"
                     "image of a batch, so all 1000 ImageNet classes run as one job. Writes contact sheets\n"
                     f"of {SHEET} images and fooling.tsv (class, name, confidence, steps).\n\n"
                     "examples:\n"
                     "  cnnviz fool --classes goldfish espresso 'tiger cat'\n"
                     "  cnnviz fool --classes 0-99 --start blank\n"
                     "  cnnviz fool --classes all --out fooling/\n"
                     "  cnnviz fool --model fashion_cnn --classes all --each")
def fool_command(parser: argparse.ArgumentParser) -> Run:
    parser.add_argument("--classes", "-c", nargs="+", required=True, metavar="CLASS",
                        help="class names, indices, ranges like 0-99, or all")
    add_model(parser, classes_flags=("--class-names",))
    add_out(parser)
    add_function_options(parser, fool, ["threshold", "steps", "lr", "decay", "start", "batch_size", "seed"],
                         metavars={"steps": "N", "batch_size": "N"}, defaults={"batch_size": "what fits the device"})
    parser.add_argument("--each", action="store_true", help="also write one PNG per class")

    def run(args: argparse.Namespace) -> None:
        with session(args.device) as (group, device):  # under torchrun: each process fools its share
            args.device = str(device)
            handle = load_handle(args)
            classes = parse_classes(handle, args.classes)
            out = output_dir(args.out)
            result = fool(handle, classes, threshold=args.threshold, steps=args.steps, lr=args.lr,
                          decay=args.decay, start=args.start, batch_size=args.batch_size, seed=args.seed)
        if group.leader:
            write_fooling(handle, result, classes, out, args)

    return run


def write_fooling(handle: ModelHandle, result: FoolingResult, classes: list[int], out: Path,
                  args: argparse.Namespace) -> None:
    """The contact sheets, fooling.tsv and the summary line of ``cnnviz fool``."""
    side = 112 if handle.input_size < 112 else None  # 28 px images enlarged 4x so captions fit
    rows = ["class\tname\tconfidence\tsteps"]
    texts = []
    for image, index, confidence, steps in zip(result.images, result.classes.tolist(),
                                               result.confidence.tolist(), result.steps.tolist()):
        name = handle.class_name(index)
        rows.append(f"{index}\t{name}\t{confidence:.5f}\t{steps}")
        texts.append(f"{index} {name} {confidence:.1%} ({steps} steps)")
        if args.each:
            save_image(out / f"fool-{index:04d}.png", to_uint8(image))
    text = ("\n".join(rows) + "\n").encode()
    atomic_write(out / "fooling.tsv", lambda f: f.write(text))
    for sheet, first in enumerate(range(0, len(texts), SHEET), start=1):
        path = save_image(out / f"fooling-sheet-{sheet:02d}.png",
                          picture_grid(result.images[first:first + SHEET], texts[first:first + SHEET],
                                       side=side, columns=min(8, len(texts))))
        print(path)
    print(out / "fooling.tsv")
    steps_done = result.steps[result.steps >= 0].float()
    summary = (f"{int(result.reached.sum())}/{len(classes)} classes reached {args.threshold:.1%} "
               f"(min confidence {result.confidence.min():.4f}) in {result.seconds:.1f} s on {handle.device}")
    if len(steps_done):
        summary += f"; steps median {steps_done.median():.0f}, max {steps_done.max():.0f}"
    if not bool(result.reached.all()):
        summary += "; for the rest, try more --steps"
    print(summary)

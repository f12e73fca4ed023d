"""``cnnviz gallery``: build the static HTML gallery."""

from __future__ import annotations

import argparse
from pathlib import Path

from cnnviz.cli.commands.features import parse_channels
from cnnviz.cli.options import add_device
from cnnviz.cli.registry import Run, command
from cnnviz.zoo.core import CnnvizError


@command("gallery", "build a static HTML gallery of every method on the shipped models and photos", order=90,
         description="Build a static website of what cnnviz shows, from the models and photos that ship:\n"
                     "  index.html               navigation to every page\n"
                     "  one page per image       every attribution method side by side on the predicted class,\n"
                     "                           with deletion/insertion AUCs next to a random map\n"
                     "  one page per model       first-layer filters, feature maps, neuron atlas of a few layers,\n"
                     "                           class visualizations, feature inversion, DeepDream\n"
                     "  attacks                  adversarial examples, fooling images, style transfer\n"
                     "  training                 fashion_cnn's curves, confusion matrix, gradient norms\n"
                     "Each card states its method, parameters and seconds. Finished cards are kept: run the\n"
                     "command again to resume an interrupted build (nothing is recomputed) or to add a model.\n"
                     "Nothing is written outside --out. Open OUT/index.html in a browser.\n\n"
                     "--quick takes about 2 minutes on 2 CPU cores; the full gallery is meant for a GPU.\n\n"
                     "examples:\n"
                     "  cnnviz gallery --quick                        the default gallery, on a laptop\n"
                     "  cnnviz gallery --out site/ --device cuda      the full gallery on a GPU\n"
                     "  cnnviz gallery --model resnet18 --images chelsea photos/dog.jpg --out site/\n"
                     "  cnnviz gallery --quick --model runs/my-run/ models/net.pt2 --out site/\n"
                     "  cnnviz gallery --model fashion_cnn --units features.block2:0-7 --data fashion-mnist \\\n"
                     "                 --out site/\n"
                     "  cnnviz gallery --audit cnnviz-audit/ --out site/    an audit (cnnviz audit) into the site")
def gallery_command(parser: argparse.ArgumentParser) -> Run:
    parser.add_argument("--out", "-o", default="cnnviz-gallery", metavar="DIR",
                        help="folder of the site (created; default: cnnviz-gallery)")
    parser.add_argument("--model", "-m", nargs="+", action="extend", metavar="NAME",
                        help="models to show, any --model source (default: efficientnet_lite0 fashion_cnn; "
                             "see cnnviz models --help); a source's weights come with it (zoo, cache, run "
                             "folder, .pt2, or a factory that loads them)")
    parser.add_argument("--images", "-i", nargs="+", action="extend", metavar="I",
                        help="image files, folders or scikit-image sample names shown for every model "
                             "(default: scikit-image photos; Fashion-MNIST test images for fashion_cnn when "
                             "installed)")
    parser.add_argument("--units", nargs="+", action="extend", metavar="LAYER[:CHANNELS]",
                        help="instead of the cards, export the unit pages of the explorer (cnnviz serve) as static "
                             "HTML into OUT/units/: one page per channel (e.g. features.block2:0-7,12; all "
                             "channels when none are given) of the one --model")
    parser.add_argument("--data", metavar="DIR|fashion-mnist",
                        help="with --units: the data whose top-activating patches each unit page shows; with --audit: "
                             "the data the audit was made over, where it has moved (default: the audit's source)")
    parser.add_argument("--sheet", metavar="FILE",
                        help="with --units: the layer's sheet made by cnnviz microscope (OUT/sheet.npz) instead of "
                             "making it; refused when made from other weights")
    parser.add_argument("--cache", metavar="DIR",
                        help="with --units: keep the layer's sheet in DIR (reused while weights and data stay)")
    parser.add_argument("--dissection", metavar="FILE",
                        help="with --units: the layer's dissection.json (cnnviz dissect): each unit page shows its "
                             "label with the IoU beside it")
    parser.add_argument("--audit", metavar="RUN_DIR",
                        help="instead of the cards, publish the audit in RUN_DIR (cnnviz audit --out RUN_DIR) as "
                             "static pages in OUT/audits/NAME/ (confusion matrix, calibration, flags, classes, "
                             "mistakes; each class's strategies and concepts; each list of images), listed on "
                             "OUT/index.html; with --model, each image as that model saw it")
    parser.add_argument("--quick", action="store_true",
                        help="fewer images, steps and layers: about 2 minutes on 2 CPU cores")
    add_device(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")

    def run(args: argparse.Namespace) -> int:
        from cnnviz.gallery import Settings, build
        from cnnviz.gallery.settings import DEFAULT_MODELS

        if args.units and args.audit:
            raise CnnvizError("give --units or --audit, not both: each writes its own pages")
        if args.units:
            return export(args, DEFAULT_MODELS[0])
        given = [flag for flag in ("data", "sheet", "cache", "dissection") if getattr(args, flag)]
        if args.audit and not set(given) - {"data"}:
            return audit_pages(args)
        if given:
            raise CnnvizError(f"--{given[0]} goes with --units (the exported unit pages) or, for --data, --audit")
        settings = Settings(models=args.model or DEFAULT_MODELS, images=args.images, quick=args.quick,
                            device=args.device, progress=not args.no_progress)
        report = build(args.out, settings, progress=not args.no_progress)
        index = Path(args.out) / "index.html"
        print(f"{index}  ({len(report.computed)} cards computed, {len(report.skipped)} already there, "
              f"{len(report.failed)} failed; {report.seconds:.0f} s)")
        for name, reason in report.failed.items():
            print(f"  failed: {name}: {reason}")
        return 1 if report.failed else 0

    return run


def export(args: argparse.Namespace, default_model: str) -> int:
    """``--units``: the static unit pages of one model."""
    from cnnviz import interpret
    from cnnviz import zoo
    from cnnviz.cli.pictures import given_labels, given_sheet
    from cnnviz.gallery.unit_pages import export_units

    if args.model and len(args.model) > 1:
        raise CnnvizError("--units exports the unit pages of one --model at a time")
    handle = zoo.load(args.model[0] if args.model else default_model, device=args.device)
    image = (args.images or ["chelsea"])[0]
    if (args.sheet or args.dissection) and len(args.units) > 1:
        raise CnnvizError("--sheet and --dissection are of one layer: give one --units LAYER with them")
    layer = args.units[0].partition(":")[0]
    sheet, labels = given_sheet(args, handle, layer), given_labels(args, handle, layer)
    for spec in args.units:
        layer, _, channels = spec.partition(":")
        total = interpret.feature_maps(handle, handle.prepare([zoo.load_image(image, channels=handle.in_channels)]),
                                       layer=layer).shape[1]
        pages = export_units(args.out, handle, layer, parse_channels(channels or None, total), image=image,
                             data=args.data, actmax_steps=32 if args.quick else 128, progress=not args.no_progress,
                             sheet=sheet, cache=Path(args.cache) if args.cache else None, labels=labels)
        print(f"{pages[-1]}  ({len(pages) - 1} unit pages of {handle.name} {layer})")
    return 0


def audit_pages(args: argparse.Namespace) -> int:
    """``--audit``: the audit of a run folder as static pages."""
    from cnnviz import zoo
    from cnnviz.gallery.audit_report import publish_audit

    if args.model and len(args.model) > 1:
        raise CnnvizError("--audit shows the images as one --model saw them: give at most one")
    handle = zoo.load(args.model[0], device=args.device) if args.model else None
    page = publish_audit(args.out, args.audit, images=args.data, handle=handle)
    print(page)
    return 0

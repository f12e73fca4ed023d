"""``cnnviz audit``: a classifier over a data set — where it fails, which strategies it uses per class, what it
relies on, and the shortcuts it may hide. The computing is :mod:`interpret.audit`; this parses, shows progress and
draws the figures (:mod:`interpret.views.audit`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cnnviz import interpret
from cnnviz.cli.method_options import add_method_options, method_kwargs
from cnnviz.cli.options import add_model, add_out, checked, load_handle, output_dir
from cnnviz.cli.registry import Run, command
from cnnviz.interpret import get_method, methods
from cnnviz.interpret.core import session
from cnnviz.interpret.views import audit as drawing
from cnnviz.interpret.views import charts
from cnnviz.zoo import save_image
from cnnviz.zoo.core import NonNegativeInt, PositiveInt
from cnnviz.zoo.handle import ModelHandle

FIGURES = "figures"
SHOWN_FLAGS = 5


@command("audit", "audit a classifier over a data set: errors, calibration, strategies per class, shortcuts",
         order=46,
         description="Audit a classifier over its data, in one pass of batches:\n"
                     "  predictions  accuracy per class, the confusion matrix, calibration (reliability diagram,\n"
                     "               ECE), the most confident mistakes and the least confident correct ones;\n"
                     "  strategies   per class, the explanation maps of its images (for their true class, by\n"
                     "               --method), downsized and clustered spectrally (SpRAy; the eigengap picks\n"
                     "               the number of clusters): members, mean map, prototypes, where the\n"
                     "               relevance lies, and an embedding of the maps;\n"
                     "  concepts     per class, an NMF of --layer's activations (CRAFT), ranked by importance;\n"
                     "  flags        ranked suspects: strategies whose relevance sits in a small fixed place,\n"
                     "               away from where the rest of the class puts it (a tag, a border, a mark).\n\n"
                     "--data is a folder with one sub-folder per class, named after the model's classes\n"
                     "(DATA/Sandal/0001.png; item ids are paths relative to DATA), or fashion-mnist / mnist\n"
                     "(:train or the default :test; item ids are indices).\n\n"
                     "Writes OUT/audit.json (schema: cnnviz.interpret.audit.schema), OUT/items.json (every item's\n"
                     "prediction), OUT/maps.npy (every item's map), OUT/figures/*.png and OUT/audit.html (the\n"
                     "report to open in a browser: a confusion cell, a class or a flag opens its images). OUT is also the run\n"
                     "folder: run the same command again after a kill and it resumes where it stopped; a folder\n"
                     "holding another model's, data's or method's audit is refused. Runs unchanged under\n"
                     "torchrun (chunks shared over processes; the same audit.json).\n\n"
                     "examples:\n"
                     "  cnnviz audit --model fashion_cnn --data fashion-mnist --out audit-fashion\n"
                     "  cnnviz audit --model runs/marked/ --data marked-test/ --out audit-marked\n"
                     "  cnnviz audit --model fashion_cnn --data fashion-mnist --method gradient --map-size 28\n"
                     "  torchrun --nproc-per-node 4 -m cnnviz.cli.main audit --model M --data imagenet-val/ --out A")
def audit_command(parser: argparse.ArgumentParser) -> Run:
    add_model(parser)
    parser.add_argument("--data", "-d", required=True, metavar="PATH",
                        help="folder of class sub-folders of images, or fashion-mnist / mnist (add :train for "
                             "the training split)")
    parser.add_argument("--method", default=interpret.audit.DEFAULT_METHOD, metavar="METHOD",
                        help="attribution method whose maps are clustered (default: %(default)s, one forward and "
                             "one backward pass per batch at the input's resolution: on planted shortcuts it found "
                             "the mark and left clean models unflagged, where Grad-CAM's coarse maps did not; "
                             "list: cnnviz explain --help)")
    parser.add_argument("--layer", "-l", metavar="NAME",
                        help="the method's layer and the layer concepts are found in (default: the model's)")
    add_out(parser, "cnnviz-audit")
    tuning = parser.add_argument_group("audit settings")
    tuning.add_argument("--map-size", type=checked(PositiveInt, "--map-size"), default=interpret.audit.MAP_SIZE,
                        metavar="PX", help="side maps are downsized to for clustering (default: %(default)s)")
    tuning.add_argument("--max-clusters", type=checked(PositiveInt, "--max-clusters"), default=8, metavar="K",
                        help="the most strategies per class the eigengap may choose (default: %(default)s)")
    tuning.add_argument("--concepts", type=checked(NonNegativeInt, "--concepts"), default=interpret.audit.CONCEPTS,
                        metavar="N", help="concepts per class, 0 for none (default: %(default)s)")
    tuning.add_argument("--chunk", type=checked(PositiveInt, "--chunk"), default=interpret.audit.CHUNK, metavar="N",
                        help="items per chunk written to the run folder (default: %(default)s; kept on resume)")
    tuning.add_argument("--seed", type=int, default=0,
                        help="seeds clustering, embedding, concepts and a stochastic method's noise (default: 0)")
    tuning.add_argument("--no-figures", action="store_true", help="write the data only, no PNG figures")
    add_method_options(parser, methods("attribution"), skip=("seed",))

    def run(args: argparse.Namespace) -> None:
        from cnnviz.gallery.audit_report import write_audit_report  # the explorer's templates: loaded when used

        with session(args.device) as (group, device):
            args.device = str(device)
            handle = load_handle(args)
            out = output_dir(args.out)
            method = get_method(args.method, "attribution")
            audit_run = interpret.audit.AuditRun(
                handle, args.data, workdir=Path(out), method=method.name, layer=args.layer,
                options=method_kwargs(args, method), map_size=args.map_size, chunk=args.chunk,
                seed=args.seed, max_clusters=args.max_clusters, concepts=args.concepts,
                group=group)
            if audit_run.done and group.leader:
                print(f"resuming {out}: {audit_run.done} of {audit_run.total} steps already done")
            found = interpret.audit.run_to_end(audit_run, progress=True)
            if not group.leader:
                return
            if not args.no_figures:
                write_figures(handle, audit_run.data, found, out)
                write_audit_report(out, out, images=audit_run.data.dataset, handle=handle)
            report(found, out, group.world)

    return run


def write_figures(handle: ModelHandle, data: Any, found: interpret.audit.Audit, out: Path) -> list[Path]:
    """``OUT/figures/``: confusion.png, reliability.png, and per class its clusters, embedding and concepts."""
    folder = out / FIGURES
    written = [charts.save(drawing.confusion_matrix(found.confusion), folder / "confusion.png"),
               charts.save(drawing.reliability_diagram(found.calibration), folder / "reliability.png")]
    for name, strategy in found.classes.items():
        shown = [item for cluster in strategy["clusters"] for item in cluster["prototypes"][:drawing.PROTOTYPES_SHOWN]]
        crops = [c["item"] for concept in strategy["concepts"] for c in concept["crops"][:drawing.CROPS_SHOWN]]
        images = data.by_id(handle, shown + crops)
        maps = {item: found.map(item) for item in shown}
        stem = f"class-{strategy['index']:03d}"
        sheet = drawing.class_clusters(name, strategy, images, maps)
        written.append(save_image(folder / f"{stem}-clusters.png", sheet))
        written.append(charts.save(drawing.embedding(name, strategy), folder / f"{stem}-embedding.png"))
        sheet = drawing.concepts(name, strategy["concepts"], images)
        if sheet is not None:
            written.append(save_image(folder / f"{stem}-concepts.png", sheet))
    return written


def report(found: interpret.audit.Audit, out: Path, processes: int) -> None:
    """What the audit found, in a few lines."""
    overall = found.overall
    shards = f" in {processes} processes" if processes > 1 else ""
    print(f"{out / 'audit.json'}  ({overall['items']} items{shards}; accuracy {100 * overall['accuracy']:.2f}%, "
          f"ECE {overall['ece']:.3f}; {len(found.flags)} flag(s) above {found.threshold})")
    for flag in found.flags[:SHOWN_FLAGS]:
        print(f"  flag {flag['score']:.2f}: {flag['class']}, clusters {flag['clusters']}, {flag['items']} items")

"""``cnnviz explain`` (attribution maps as images) and ``cnnviz evaluate`` (their faithfulness)."""

from __future__ import annotations

import argparse
import csv
import io
import math
import time
from pathlib import Path
from typing import Any

import torch

from cnnviz import interpret
from cnnviz.cli.dense import add_dense_flags, explain_dense, is_dense
from cnnviz.cli.figures import add_chart_format
from cnnviz.cli.method_options import add_method_options, method_kwargs
from cnnviz.cli.options import add_images, add_model, add_out, checked, load_batch, load_handle, numbered, output_dir
from cnnviz.cli.pictures import add_pictures, channel_pictures, given_labels, given_sheet
from cnnviz.cli.registry import Run, command
from cnnviz.interpret import Method, class_index, methods
from cnnviz.interpret.core import session
from cnnviz.interpret.evaluate import (
    ALIASES,
    DEFAULT_METRICS,
    DELETIONS,
    MEASURES,
    METRICS,
    CurveSteps,
    EvaluationOptions,
    Record,
    Resamples,
    call_options,
    evaluate_images,
    explain_one,
    file_maker,
    maps_in_folder,
    method_maker,
    random_maker,
    summary_rows,
)
from cnnviz.interpret.views import COLORMAPS, DEFAULT_COLORMAP, charts, detail_panel, explanation_panel
from cnnviz.zoo import atomic_write, safe_name, save_array, save_image
from cnnviz.zoo.core import NonNegativeFloat, NonNegativeInt, OpenUnitInterval, PositiveFloat, PositiveInt
from cnnviz.zoo.core import CnnvizError
from cnnviz.zoo.core import write_json
from cnnviz.zoo.data import expand_sources
from cnnviz.zoo.handle import ModelHandle

FAMILY = "attribution"


GROUP_TITLES = {"gradients": "input gradients", "perturbation": "masks and perturbations of the input",
                "cams": "class activation maps; --layer takes one layer or several, comma-separated",
                "captum": "captum's catalog; any captum.attr class works: captum:Name, captum:NoiseTunnel(Name)"}


def _groups() -> dict[str, list[Method]]:
    grouped: dict[str, list[Method]] = {}
    for m in methods(FAMILY):
        grouped.setdefault(m.group or "other", []).append(m)
    return grouped


def _method_list() -> str:
    return "\n".join(f" {group}: {GROUP_TITLES.get(group, '')}\n" + "\n".join(
        f"  {m.name:<34} {m.summary}" for m in members) for group, members in _groups().items())


class _Choices(list):
    """Method and family names; any ``captum:Name`` is accepted too (built on demand)."""

    def __contains__(self, item: object) -> bool:
        return list.__contains__(self, item) or str(item).startswith("captum:")


def _add_common(parser: argparse.ArgumentParser, *, methods_required: bool = True) -> None:
    names = [m.name for m in methods(FAMILY)]
    # Optional METHODs are checked in _chosen: argparse refuses an empty list against choices.
    parser.add_argument("methods", nargs="+" if methods_required else "*", metavar="METHOD",
                        choices=_Choices([*names, *_groups(), "all"]) if methods_required else None,
                        help="methods, families (" + ", ".join(_groups()) + ") or all; see the list above")
    add_images(parser)
    add_model(parser)
    parser.add_argument("--target", "-t", metavar="CLASS",
                        help="class to explain: index, name, or part of one name (default: each image's predicted "
                             "class)")
    parser.add_argument("--layer", "-l", metavar="NAME",
                        help="layer for Grad-CAM methods (default: the model's; list: cnnviz layers MODEL)")
    add_method_options(parser, methods(FAMILY))


def _chosen(args: argparse.Namespace) -> list[Method]:
    groups = {group: [m.name for m in members] for group, members in _groups().items()}
    groups["all"] = [m.name for m in methods(FAMILY)]
    wanted = [name for given in args.methods for name in groups.get(given, [given])]  # families expand
    return [interpret.get_method(name, FAMILY) for name in dict.fromkeys(wanted)]


def _setup(args: argparse.Namespace) -> tuple[ModelHandle, int | None, list[str], torch.Tensor]:
    """Check every argument before any heavy work, then load model and images."""
    handle = load_handle(args)
    target = class_index(handle, args.target) if args.target is not None else None
    if args.layer is not None:
        for part in args.layer.split(","):  # CAM methods take several layers, comma-separated
            handle.layer(part.strip())
    names, batch = load_batch(args, handle)
    return handle, target, names, batch


def _matplotlib_name(colormap: str) -> str:
    """The matplotlib colormap of an OpenCV colormap name (the same name, where matplotlib has it)."""
    import matplotlib

    return colormap if colormap in matplotlib.colormaps else charts.COLORMAP


@command("explain", "write attribution maps (Grad-CAM, occlusion, gradients, ...) over images", order=30,
         description="Explain a model's decision on images with attribution maps, written as PNG panels\n"
                     "(image | map | map over image | colour bar) with the prediction in the caption, and\n"
                     "beside each a JSON: model, image, target and its probability, method, layer, options,\n"
                     "seconds, statistics of the map (and its .npy with --npy).\n\n"
                     "methods:\n" + _method_list() + "\n\n"
                     "examples:\n"
                     "  cnnviz explain gradcam --image chelsea\n"
                     "  cnnviz explain gradcam occlusion --image chelsea coffee --out maps/\n"
                     "  cnnviz explain all --image photos/ --target 'tiger cat' --npy\n"
                     "  cnnviz explain concepts --image chelsea --pictures-steps 64   (each concept's picture too)\n"
                     "  cnnviz explain occlusion --image coffee --window 48 --stride 16 --fill blur\n"
                     "  cnnviz explain gradcam --model torchvision:fcn_resnet50 --weights random --image chelsea "
                     "--target cat --region 40,40,180,200\n"
                     "  cnnviz explain occlusion --model torchvision:fasterrcnn_resnet50_fpn --weights W.pth --box 3")
def explain(parser: argparse.ArgumentParser) -> Run:
    _add_common(parser)
    add_out(parser)
    parser.add_argument("--npy", action="store_true", help="also write each raw map as .npy")
    parser.add_argument("--colormap", default=DEFAULT_COLORMAP, choices=sorted(COLORMAPS), metavar="NAME",
                        help=f"OpenCV colormap for the heatmaps (default: {DEFAULT_COLORMAP}, perceptually uniform)")
    parser.add_argument("--format", choices=charts.FORMATS, default="png",
                        help="png panels only (default), or also each panel as svg / pdf vector graphics for "
                             "papers (image, map, overlay and a numbered colour bar)")
    add_pictures(parser, "the concept panel (CRP)")
    add_dense_flags(parser)

    def run(args: argparse.Namespace) -> None:
        chosen = _chosen(args)
        handle, target, names, batch = _setup(args)
        explained = args.layer or handle.default_layer
        dictionary, labels = given_sheet(args, handle, explained), given_labels(args, handle, explained)
        out = output_dir(args.out)
        if is_dense(handle, args):  # a region of a segmentation or a detector's box, not a class
            explain_dense(args, chosen, handle, target, names, batch, out)
            return
        with torch.no_grad():
            probs = handle(batch).softmax(-1)
        stems = numbered(names)
        for method in chosen:
            found = explain_one(handle, method, batch, target, names=names,
                                files=[f"{stem}-{method.name}" for stem in stems], layer=args.layer,
                                options=method_kwargs(args, method), probs=probs, detail=True, npy=args.npy)
            looks = dictionary
            if looks is None and found.detail is not None:  # the concepts' channels, over every image
                looks = channel_pictures(args, handle, found.detail.layer, found.detail.channels.flatten().tolist(),
                                         instead="give --sheet (cnnviz microscope) or fewer images")
            for i, record in enumerate(found.records):
                path = save_image(out / record["png"],
                                  explanation_panel(batch[i], found.flat[i], found.titles[i], colormap=args.colormap))
                if args.format != "png":
                    charts.save(charts.explanation(batch[i], found.flat[i], found.titles[i],
                                                   colormap=_matplotlib_name(args.colormap)),
                                out / path.stem, args.format)
                if args.npy:
                    save_array(out / record["npy"], found.maps[i])
                print(f"{path}  ({method.name}: {record['seconds']:.2f} s for {len(stems)} image(s))")
                if found.detail is not None:  # the method's own panel: for concepts, each concept's share and map
                    panel = save_image(out / f"{path.stem}-panel.png",
                                       detail_panel(batch[i], found.detail, i, found.titles[i], colormap=args.colormap,
                                                    dictionary=looks, labels=labels))
                    record.update(panel=panel.name, detail=found.detail.record(i))
                    print(f"{panel}  ({found.detail.summary(i)})")
                write_json(path.with_suffix(".json"), record)

    return run


@command("evaluate", "score attribution methods: deletion/insertion, ROAD, infidelity, sensitivity, randomization",
         order=31,
         description="Score attribution methods for faithfulness, next to a random-map baseline, over images\n"
                     "(a folder is streamed in batches), with a bootstrap interval of each mean:\n"
                     "  deletion       AUC of the probability as the most salient pixels turn black (lower is better)\n"
                     "  insertion      AUC as they appear on a blurred canvas (higher is better)\n"
                     "  road           ROAD, (LeRF - MoRF) / 2 with noisy linear imputation (higher is better)\n"
                     "  infidelity     captum's infidelity under Gaussian noise, normalized (lower is better)\n"
                     "  sensitivity    captum's max-sensitivity of the map to uniform noise (lower is better)\n"
                     "  randomization  similarity (Spearman, SSIM, HOG) of the map with the map of the model\n"
                     "                 whose top block, then all blocks, were re-initialized (lower is better;\n"
                     "                 guided backprop stays high: it fails this sanity check)\n"
                     "  gini, entropy  how concentrated the map is (properties, not qualities)\n"
                     "A constant map has no ranks: its scores are undefined, with the reason in the table.\n"
                     "Writes OUT/evaluation.json (summary and per-image scores), OUT/evaluation.csv (summary),\n"
                     "OUT/curves.json (per-step curves) and OUT/curves.png (--format svg|pdf for papers). Runs unchanged\n"
                     "under torchrun.\n\n"
                     "methods:\n" + _method_list() + "\n\n"
                     "examples:\n"
                     "  cnnviz evaluate gradcam gradient guided_backprop --image chelsea coffee\n"
                     "  cnnviz evaluate all --image photos/ --metrics all --similarity spearman ssim hog\n"
                     "  cnnviz evaluate --maps maps/ --image chelsea coffee   (maps from explain --npy or elsewhere)\n"
                     "  torchrun --nproc-per-node 4 -m cnnviz.cli.main evaluate gradcam --image imagenet-val/")
def evaluate(parser: argparse.ArgumentParser) -> Run:
    _add_common(parser, methods_required=False)
    add_out(parser, "cnnviz-evaluate")
    add_chart_format(parser)
    parser.add_argument("--maps", metavar="DIR",
                        help="also score maps computed elsewhere: DIR/STEM-METHOD.npy (as explain --npy writes) or "
                             "DIR/STEM.npy")
    parser.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS), choices=[*METRICS, *ALIASES, "all"],
                        metavar="M", help=f"metrics to compute: {', '.join(METRICS)}, or all "
                                          f"(default: {' '.join(DEFAULT_METRICS)})")
    parser.add_argument("--curve-steps", type=checked(CurveSteps, "--curve-steps"), default=32, metavar="N",
                        help="points on the deletion/insertion curves (default: 32)")
    parser.add_argument("--randomize", type=checked(NonNegativeInt, "--randomize"), default=None, metavar="N",
                        help="re-initialize the top N blocks, one at a time (default: all; 0 skips the check)")
    parser.add_argument("--similarity", nargs="+", default=["spearman"], choices=MEASURES, metavar="S",
                        help=f"randomization similarity measures: {', '.join(MEASURES)} (default: spearman)")
    parser.add_argument("--signed-similarity", action="store_true",
                        help="randomization: compare signed maps, not |map|")
    parser.add_argument("--perturbations", type=checked(PositiveInt, "--perturbations"), default=16, metavar="N",
                        help="perturbations per image for infidelity and sensitivity (default: 16)")
    parser.add_argument("--infidelity-noise", type=checked(PositiveFloat, "--infidelity-noise"), default=0.05,
                        metavar="SD",
                        help="infidelity: perturbation standard deviation in [0, 1] pixels (default: 0.05)")
    parser.add_argument("--sensitivity-radius", type=checked(PositiveFloat, "--sensitivity-radius"), default=0.02,
                        metavar="R",
                        help="sensitivity: uniform noise radius in [0, 1] pixels (default: 0.02)")
    parser.add_argument("--road-noise", type=checked(NonNegativeFloat, "--road-noise"), default=0.01, metavar="SD",
                        help="ROAD: imputation noise standard deviation (default: 0.01)")
    parser.add_argument("--metric-seed", type=int, default=0, metavar="N",
                        help="seed of every random draw of the metrics (default: 0)")
    parser.add_argument("--images-per-batch", type=checked(PositiveInt, "--images-per-batch"), default=8, metavar="N",
                        help="images loaded and scored together (default: 8)")
    parser.add_argument("--bootstrap", type=checked(Resamples, "--bootstrap"), default=2000, metavar="N",
                        help="bootstrap resamples for the intervals (default: 2000)")
    parser.add_argument("--level", type=checked(OpenUnitInterval, "--level"), default=0.95,
                        help="confidence level (default: 0.95)")
    parser.add_argument("--json", metavar="PATH", help="summary and per-image scores (default: OUT/evaluation.json)")
    parser.add_argument("--csv", metavar="PATH", help="summary table (default: OUT/evaluation.csv)")

    def run(args: argparse.Namespace) -> None:
        _check_ranges(args)
        chosen = _chosen(args)
        if not chosen and not args.maps:
            raise CnnvizError("name at least one METHOD, or give --maps DIR")
        metrics = _metrics(args)
        sources = expand_sources(args.image)
        stems = [safe_name(s) for s in numbered([Path(str(s)).stem for s in sources])]  # as explain names files
        with session(args.device) as (group, device):
            args.device = str(device)
            handle, target = _setup_model(args)
            makers = {"random": random_maker(args.metric_seed)}
            if args.maps:
                makers.update({name: file_maker(paths) for name, paths in maps_in_folder(args.maps, stems).items()
                               if name != "random"})
            makers.update({m.name: method_maker(
                lambda h, x, t, m=m: m.fn(h, x, t, **call_options(m, args.layer, method_kwargs(args, m))))
                for m in chosen})
            options = EvaluationOptions(steps=args.curve_steps, randomize=args.randomize,
                                        measures=tuple(args.similarity), absolute=not args.signed_similarity,
                                        road_noise=args.road_noise, samples=args.perturbations,
                                        noise=args.infidelity_noise, radius=args.sensitivity_radius,
                                        seed=args.metric_seed)
            out = output_dir(args.out)  # every input checked: only now is anything written
            start = time.perf_counter()
            records = evaluate_images(handle, sources, makers, target, metrics=metrics, options=options,
                                      batch_size=args.images_per_batch)
            seconds = time.perf_counter() - start
            if not group.leader:
                return
            summary = summary_rows(records, level=args.level, resamples=args.bootstrap, seed=args.metric_seed)
            _print_summary(handle, summary, len(sources), args.level, group.world)
            meta = {"model": handle.name, "device": str(handle.device), "processes": group.world,
                    "images": len(sources), "target": target, "methods": list(makers), "metrics": metrics,
                    "options": vars(options), "level": args.level, "bootstrap_resamples": args.bootstrap,
                    "seconds": round(seconds, 2)}
            written = _write_results(args, out, handle, meta, summary, records, options, len(sources))
            print("wrote " + ", ".join(str(p) for p in written))

    return run


def _metrics(args: argparse.Namespace) -> list[str]:
    """The metrics asked for, in order, without the randomization check when ``--randomize 0``."""
    metrics = list(METRICS) if "all" in args.metrics else list(dict.fromkeys(ALIASES.get(m, m) for m in args.metrics))
    if args.randomize == 0 and "randomization" in metrics:
        metrics.remove("randomization")
    if not metrics:
        raise CnnvizError("no metric left to compute (--randomize 0 skipped the only one)")
    return metrics


def _write_results(args: argparse.Namespace, out: Path, handle: ModelHandle, meta: dict[str, Any],
                   summary: list[dict[str, Any]], records: list[Record], options: EvaluationOptions,
                   images: int) -> list[Path]:
    """The summary and per-image scores (JSON, CSV), the curves (JSON) and their chart."""
    scores = [{"image": r.image, "index": r.index, "method": r.method, "target": r.target,
               "probability": r.probability, "scores": r.scores, "notes": r.notes} for r in records]
    json_path = Path(args.json) if args.json else out / "evaluation.json"
    csv_path = Path(args.csv) if args.csv else out / "evaluation.csv"
    written = [write_json(json_path, {**meta, "summary": summary, "per_image": scores}),
               write_csv(csv_path, summary),
               write_json(out / "curves.json", {**meta, "curves": [
                   {"image": r.image, "index": r.index, "method": r.method, **r.curves} for r in records]})]
    panels = curve_panels(records, meta["metrics"], args.curve_steps, options.fractions)
    if panels:
        written.append(charts.save(charts.faithfulness_curves(
            panels, title=f"{handle.name}: mean over {images} image(s), 25-75th percentile shaded"),
            out / "curves", args.format))
    return written


def _setup_model(args: argparse.Namespace) -> tuple[ModelHandle, int | None]:
    handle = load_handle(args)
    target = class_index(handle, args.target) if args.target is not None else None
    if args.layer is not None:
        handle.layer(args.layer)
    return handle, target


def _check_ranges(args: argparse.Namespace) -> None:
    """What the flags' declared ranges cannot say: --maps must be a folder."""
    if args.maps and not Path(args.maps).is_dir():
        raise CnnvizError(f"--maps {args.maps} is not a folder")


def _cell(mean: float, low: float, high: float, signed: bool = False) -> str:
    if math.isnan(mean):
        return "undefined"
    form = "{:+.3f}" if signed else "{:.3f}"
    return f"{form.format(mean)} [{form.format(low)}, {form.format(high)}]"


def _print_summary(handle: ModelHandle, summary: list[dict[str, Any]], images: int, level: float,
                   processes: int) -> None:
    shards = f" in {processes} processes" if processes > 1 else ""
    print(f"{handle.name} on {images} image(s){shards}: mean [{level:.0%} bootstrap interval]; "
          "'vs random' is the paired difference")
    print("deletion_blur deletes onto a blurred copy, deletion_mean onto the dataset mean, deletion_black to black; "
          "x: the interval of the difference to random does not lie on the better side")
    print(f"{'metric':<18} {'better':<7} {'method':<22} {'mean [interval]':<26} {'vs random':<30} {'n':>4}  notes")
    for row in summary:
        better = {-1: "lower", 1: "higher"}.get(row["better"], "")
        versus = _cell(row["vs_baseline_mean"], row["vs_baseline_low"], row["vs_baseline_high"],
                       signed=True) if "vs_baseline_mean" in row else ""
        mark = {False: " x", True: "  "}.get(row.get("beats_baseline"), "  ")
        print(f"{row['metric']:<18} {better:<7} {row['method']:<22} {_cell(row['mean'], row['low'], row['high']):<26} "
              f"{versus + mark:<30} {row['count']:>4}  {row['notes'][:60]}")


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    """The summary rows as CSV, atomically (empty cells where a value is undefined)."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()})
    text = buffer.getvalue()
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def curve_panels(records: list[Record], metrics: list[str], steps: int,
                 fractions: tuple[float, ...]) -> dict[str, list[charts.Band]]:
    """Mean curves with their 25th-75th percentile band per method, for the chart."""
    kinds = [(name.replace("_", " to ").replace("to mean", "to the dataset mean"), name,
              [k / steps for k in range(steps + 1)]) for name in metrics if name in ("insertion", *DELETIONS)]
    if "road" in metrics:
        kinds += [("ROAD most relevant first", "road_morf", list(fractions)),
                  ("ROAD least relevant first", "road_lerf", list(fractions))]
    panels: dict[str, list[charts.Band]] = {}
    methods = list(dict.fromkeys(r.method for r in records))
    for title, key, x in kinds:
        bands = []
        for method in methods:
            curves = [r.curves[key] for r in records if r.method == method and key in r.curves]
            if curves:
                values = torch.tensor(curves, dtype=torch.float64)
                low, mean, high = values.nanquantile(0.25, 0), values.nanmean(0), values.nanquantile(0.75, 0)
                bands.append(charts.Band(method, x, mean.tolist(), low.tolist(), high.tolist()))
        if bands:
            panels[title] = bands
    return panels

"""``cnnviz train`` and ``cnnviz lr-find``: train a small CNN, or find its learning rate first."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from cnnviz.cli.figures import add_chart_format
from cnnviz.cli.options import add_device, checked, output_dir
from cnnviz.cli.registry import Run, command
from cnnviz.interpret.inside import summary_lines
from cnnviz.interpret.views import charts, sheets
from cnnviz.zoo.core import (
    CnnvizError, ImageSide, NonNegativeFloat, NonNegativeInt, OpenUnitInterval, PositiveFloat, PositiveInt,
    UnitInterval, pick_device,
)
from cnnviz.zoo.data import DATASETS
from cnnviz.zoo.models import ACTIVATIONS, ARCHITECTURES, cnn_handle
from cnnviz.zoo.train import (
    DEFAULT_LR, OPTIMIZERS, SCENE_TASKS, SCHEDULES, TUTORIAL_OPTIONS, ClassifierPlan, ClassifierRequest, RunFiles,
    SceneTask, TrainConfig, TrainingLog, classifier_spec, data_settings, load_splits, lr_range_test,
    train_classifier, train_scene_model,
)

DEFAULTS = TrainConfig()
# Flags of the classifier recipe that the scene recipes fix.
CLASSIFIER_ONLY = ["activation", *TUTORIAL_OPTIONS, "data", "data_dir", "val_fraction", "image_size", "batch_size",
                   "optimizer", "lr", "momentum", "weight_decay", "schedule", "step_size", "gamma", "patience",
                   "label_smoothing", "early_stopping", "augment", "amp", "name", "diagnostics"]

TRAIN_DESCRIPTION = f"""\
Train a small CNN and write, into --out, NAME.pt (the weights, a plain state dict),
NAME-log.json (settings, per-epoch history, test accuracy, diagnostics) and NAME-curves.png
(loss and accuracy curves, overfitting flagged; --format svg or pdf for vector charts). The full training state is checkpointed
atomically after every epoch to NAME-checkpoint.pt: if the run dies (even kill -9), run the
same command with --resume and it continues from the last finished epoch, ending where an
uninterrupted run would. The data is split train/validation first; normalization statistics
come from the training split only; the test set is touched once, at the end.
The defaults are the recipe of the shipped fashion_cnn: tutorial_cnn 16,64,128 + dense 256,
AdamW 3e-3 one-cycle, weight decay 0.05, label smoothing 0.1, 2-px shifts and flips, 18 epochs
(93.5% Fashion-MNIST test accuracy in about 7 minutes on 2 CPU cores).

models: {', '.join(ARCHITECTURES)}; activations: {', '.join(ACTIVATIONS)}
optimizers: {', '.join(OPTIMIZERS)}; schedules: {', '.join(SCHEDULES)}

examples:
  cnnviz train                                           tutorial_cnn on Fashion-MNIST, default recipe
  cnnviz train --model lenet5 --data mnist --data-dir ~/mnist --epochs 5
  cnnviz train --optimizer nesterov --lr 0.05 --schedule cosine --label-smoothing 0.1
  cnnviz train --activation prelu --early-stopping 3 --schedule plateau --diagnostics
  cnnviz train --data photos/ --image-size 64 --model small_resnet     one sub-folder per class
  cnnviz train --resume                                  continue the run killed in cnnviz-train/
  cnnviz train --model fashion_det                       rebuild the shipped detector (fashion_seg: segmenter)
  cnnviz lr-find --optimizer adamw                        pick --lr from the LR range test first
"""

LR_FIND_DESCRIPTION = """\
Run Leslie Smith's LR range test: train a throwaway copy of the model for --steps batches while
raising the learning rate geometrically from --start-lr to --end-lr. Prints the suggested rate
(a tenth of where the smoothed loss is lowest) and writes the curve to OUT/lr-find.png.

examples:
  cnnviz lr-find                                    tutorial_cnn, AdamW, Fashion-MNIST
  cnnviz lr-find --optimizer nesterov --batch-size 256 --end-lr 3
"""


def _csv_ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 32,64,128, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers such as 32,64,128, got {text!r}")
    return values


def _add_model_and_data(parser: argparse.ArgumentParser) -> None:
    model = parser.add_argument_group("model")
    model.add_argument("--model", "-m", default=None, metavar="ARCH",
                       help=f"architecture: {', '.join(ARCHITECTURES)} (default: tutorial_cnn); train only: "
                            f"{', '.join(SCENE_TASKS)}, the shipped dense models, on Fashion-MNIST scenes")
    model.add_argument("--activation", "-a", default=None, metavar="NAME",
                       help=f"{', '.join(ACTIVATIONS)} (default: relu)")
    model.add_argument("--channels", type=_csv_ints, default=None, metavar="C1,C2,..",
                       help="tutorial_cnn: filters of each conv block (default: 16,64,128)")
    model.add_argument("--convs", type=_csv_ints, default=None, metavar="N1,N2,..",
                       help="tutorial_cnn: conv layers in each block (default: 1 each)")
    model.add_argument("--dense", type=_csv_ints, default=None, metavar="U1,..",
                       help="tutorial_cnn: units of the hidden dense layers (default: 256)")
    model.add_argument("--conv-dropout", type=checked(UnitInterval, "--conv-dropout"), default=None, metavar="P",
                       help="tutorial_cnn: spatial dropout in conv blocks (default: 0)")
    model.add_argument("--dense-dropout", type=checked(UnitInterval, "--dense-dropout"), default=None, metavar="P",
                       help="tutorial_cnn: dropout in dense layers (default: 0.2)")
    data = parser.add_argument_group("data")
    data.add_argument("--data", "-d", default=None, metavar="NAME|DIR",
                      help=f"{', '.join(DATASETS)}, a folder of IDX files, or an image folder with one "
                           "sub-folder per class (default: fashion-mnist)")
    data.add_argument("--data-dir", default=None, metavar="DIR",
                      help="where the IDX files of a named dataset are (default: /usr/share/datasets/NAME)")
    data.add_argument("--val-fraction", type=checked(OpenUnitInterval, "--val-fraction"), default=None, metavar="F",
                      help="share of the training data held out for validation (default: 0.1)")
    data.add_argument("--image-size", type=checked(ImageSide, "--image-size"), default=None, metavar="PX",
                      help="image folders: side images are resized to (default: 32)")
    add_device(parser)
    parser.add_argument("--threads", type=checked(PositiveInt, "--threads"), default=None, metavar="N",
                        help="CPU threads for torch (default: torch's choice, one per core)")


def _add_optimizer(parser: argparse.ArgumentParser) -> None:
    opt = parser.add_argument_group("optimization")
    opt.add_argument("--optimizer", default=None, metavar="NAME",
                     help=f"{', '.join(OPTIMIZERS)} (default: {DEFAULTS.optimizer})")
    opt.add_argument("--lr", type=checked(PositiveFloat, "--lr"), default=None, metavar="LR",
                     help="learning rate, the peak one for onecycle (default: the optimizer's usual: "
                          + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LR.items()) + ")")
    opt.add_argument("--momentum", type=checked(UnitInterval, "--momentum"), default=None, metavar="M",
                     help=f"momentum of momentum/nesterov SGD (default: {DEFAULTS.momentum})")
    opt.add_argument("--weight-decay", type=checked(NonNegativeFloat, "--weight-decay"), default=None, metavar="WD",
                     help="L2 penalty, decoupled for AdamW; not on biases or batch norm "
                          "(default: 0.05 for adamw, 5e-4 for the others)")
    opt.add_argument("--batch-size", "-b", type=checked(PositiveInt, "--batch-size"), default=None, metavar="N",
                     help=f"examples per step (default: {DEFAULTS.batch_size})")
    opt.add_argument("--label-smoothing", type=checked(UnitInterval, "--label-smoothing"), default=None, metavar="S",
                     help=f"spread S of each target over all classes (default: {DEFAULTS.label_smoothing})")
    opt.add_argument("--no-augment", dest="augment", action="store_const", const=False, default=None,
                     help="no augmentation (default: the dataset's label-preserving shifts/flips/...)")
    opt.add_argument("--no-amp", dest="amp", action="store_const", const=False, default=None,
                     help="no mixed precision on CUDA (default: on; CPU always float32)")
    opt.add_argument("--seed", type=int, default=None, metavar="S",
                     help=f"seeds the split, initialization, batch order, augmentation, dropout "
                          f"(default: {DEFAULTS.seed})")


def _config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    names = ["epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay", "schedule", "step_size",
             "gamma", "patience", "label_smoothing", "early_stopping", "augment", "amp", "seed"]
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def _given_data(args: argparse.Namespace) -> dict[str, Any]:
    return {"source": args.data, "data_dir": args.data_dir, "val_fraction": args.val_fraction,
            "image_size": args.image_size}


def _given_options(args: argparse.Namespace) -> dict[str, Any]:
    return {flag: getattr(args, flag) for flag in TUTORIAL_OPTIONS}


def _setup_threads(args: argparse.Namespace) -> None:
    if args.threads is not None:
        if args.threads < 1:
            raise CnnvizError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)


@command("train", "train a small CNN (tutorial_cnn, lenet5, small_resnet) on Fashion-MNIST, MNIST or a folder",
         description=TRAIN_DESCRIPTION, order=60)
def train_command(parser: argparse.ArgumentParser) -> Run:
    _add_model_and_data(parser)
    _add_optimizer(parser)
    sched = parser.add_argument_group("schedule and stopping")
    sched.add_argument("--epochs", "-e", type=checked(PositiveInt, "--epochs"), default=None, metavar="N",
                       help=f"passes over the training split (default: {DEFAULTS.epochs})")
    sched.add_argument("--schedule", default=None, metavar="NAME",
                       help=f"{', '.join(SCHEDULES)} (default: {DEFAULTS.schedule})")
    sched.add_argument("--step-size", type=checked(PositiveInt, "--step-size"), default=None, metavar="N",
                       help=f"step: epochs between rate drops (default: {DEFAULTS.step_size})")
    sched.add_argument("--gamma", type=checked(PositiveFloat, "--gamma"), default=None, metavar="G",
                       help=f"step/plateau: factor of each drop (default: {DEFAULTS.gamma})")
    sched.add_argument("--patience", type=checked(NonNegativeInt, "--patience"), default=None, metavar="N",
                       help=f"plateau: epochs without progress before a drop (default: {DEFAULTS.patience})")
    sched.add_argument("--early-stopping", type=checked(PositiveInt, "--early-stopping"), default=None, metavar="N",
                       help="stop after N epochs without a better validation loss and restore the best "
                            "weights (default: off)")
    files = parser.add_argument_group("files")
    files.add_argument("--out", "-o", default="cnnviz-train", metavar="DIR",
                       help="folder for the weights, log, plots and checkpoint (default: cnnviz-train)")
    files.add_argument("--name", default=None, metavar="NAME", help="file name prefix (default: the model name)")
    files.add_argument("--resume", action="store_true",
                       help="continue the interrupted run from OUT/NAME-checkpoint.pt")
    files.add_argument("--keep-checkpoint", action="store_true",
                       help="keep NAME-checkpoint.pt after a finished run (default: delete it)")
    files.add_argument("--diagnostics", action="store_true",
                       help="also draw NAME-confusion, NAME-gradients and NAME-activations charts")
    add_chart_format(files)
    parser.add_argument("--scenes", type=checked(PositiveInt, "--scenes"), default=None, metavar="N",
                        help=f"{' and '.join(SCENE_TASKS)}: training scenes (default: the shipped recipe's)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bars")

    def run(args: argparse.Namespace) -> int:
        _setup_threads(args)
        device = pick_device(args.device)
        if args.model in SCENE_TASKS:
            return _train_scene_model(SCENE_TASKS[args.model], args, device)
        if args.scenes is not None:
            raise CnnvizError(f"--scenes is for {' and '.join(SCENE_TASKS)}: drop it or choose one of them")
        out = output_dir(args.out)
        name = args.name or args.model or "tutorial_cnn"
        if not name or "/" in name or name.startswith("."):
            raise CnnvizError(f"--name must be a plain file name prefix, got {name!r}")
        request = ClassifierRequest(RunFiles(out, name), arch=args.model, activation=args.activation,
                                    options=_given_options(args), data=_given_data(args),
                                    config=_config_overrides(args), resume=args.resume,
                                    keep_checkpoint=args.keep_checkpoint, progress=not args.quiet)

        def setup(plan: ClassifierPlan, handle: Any) -> None:
            _print_setup(plan, handle, device, args.quiet)

        def draw(log: TrainingLog, stem: Path) -> None:
            _draw_charts(log, stem, args.diagnostics, args.format)

        log = train_classifier(request, device, on_start=setup, charts=draw)
        test = log.test
        print(f"{test.split} accuracy {100 * test.accuracy:.2f}% (loss {test.loss:.4f}) after "
              f"{len(log.history)} epochs; training took {log.train_seconds:.0f} s"
              f"{'; ' + log.overfitting if log.overfitting else ''}")
        print(f"wrote {out / (name + '.pt')}, {out / (name + '-log.json')}, {out / (name + '-curves.' + args.format)}")
        return 0

    return run


def _train_scene_model(task: SceneTask, args: argparse.Namespace, device: torch.device) -> int:
    """``cnnviz train --model fashion_seg|fashion_det``: the shipped recipe, with fewer or more epochs and scenes."""
    fixed = [f"--{flag.replace('_', '-')}" for flag in CLASSIFIER_ONLY if getattr(args, flag, None) not in (None, False)]
    if fixed:
        raise CnnvizError(f"{', '.join(fixed)} do not apply to {task.name}, trained by its own recipe: "
                          "give only --epochs, --scenes, --seed, --out, --resume, --keep-checkpoint")
    out = output_dir(args.out)
    log = train_scene_model(task, out, train_scenes=args.scenes, epochs=args.epochs, seed=args.seed or 0,
                            device=device, resume=args.resume, keep_checkpoint=args.keep_checkpoint,
                            progress=not args.quiet)
    score = {k: v for k, v in log.test.scores.items() if isinstance(v, float)}
    print(f"{task.name}: {', '.join(f'{k} {v:.3f}' for k, v in score.items())} on {log.test.examples} "
          f"held-out scenes after {len(log.history)} epochs; training took {log.wall_seconds_this_call:.0f} s")
    print(f"wrote {out / (task.name + '.pt')}, {out / (task.name + '-log.json')}")
    return 0


def _print_setup(plan: ClassifierPlan, handle: Any, device: torch.device, quiet: bool) -> None:
    """The command that reproduces the run, the data, the layer table and the device."""
    splits, resumed = plan.splits, plan.request.files.checkpoint if plan.request.resume else None
    print(plan.command)
    print(f"{splits.name}: {len(splits.train):,} training / {len(splits.val):,} validation"
          f"{f' / {len(splits.test):,} test' if splits.test is not None else ''} images, "
          f"{splits.channels}x{splits.input_size}x{splits.input_size}; normalization from the training split: "
          f"mean {', '.join(f'{m:.4f}' for m in splits.mean)}, std {', '.join(f'{s:.4f}' for s in splits.std)}")
    if not quiet:
        print("\n".join(summary_lines(handle)))
    print(f"training on {device} ({torch.get_num_threads()} CPU threads)"
          + (f", resuming from {resumed}" if resumed else ""))


def _draw_charts(log: TrainingLog, stem: Path, diagnostics: bool, chart_format: str) -> None:
    """NAME-curves (and with --diagnostics the confusion, gradient and activation charts) beside the weights."""
    config, spec = log.config, log.spec
    title = (f"{log.name}: {spec.arch} ({spec.activation}) on {log.dataset.name}, {config['optimizer']} lr "
             f"{config['lr']:g}, {config['schedule']}; {log.test.split} accuracy {100 * log.test.accuracy:.2f}%")
    for kind, fig in sheets.training_report(log, title).items():
        if kind == "curves" or diagnostics:
            charts.save(fig, stem.with_name(f"{stem.name}-{kind}"), chart_format)


@command("lr-find", "run the LR range test and suggest a learning rate", description=LR_FIND_DESCRIPTION,
         order=61)
def lr_find_command(parser: argparse.ArgumentParser) -> Run:
    _add_model_and_data(parser)
    _add_optimizer(parser)
    parser.add_argument("--start-lr", type=checked(PositiveFloat, "--start-lr"), default=1e-6, metavar="LR", help="first rate (default: 1e-6)")
    parser.add_argument("--end-lr", type=checked(PositiveFloat, "--end-lr"), default=1.0, metavar="LR", help="last rate (default: 1)")
    parser.add_argument("--steps", type=checked(PositiveInt, "--steps"), default=100, metavar="N", help="batches (default: 100)")
    parser.add_argument("--out", "-o", default="cnnviz-out", metavar="DIR",
                        help="folder for lr-find.png (default: cnnviz-out)")
    add_chart_format(parser)
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")

    def run(args: argparse.Namespace) -> int:

        _setup_threads(args)
        device = pick_device(args.device)
        out = output_dir(args.out)
        config = TrainConfig(**_config_overrides(args)).validate()
        splits = load_splits(data_settings(_given_data(args)), config.seed, progress=not args.quiet)
        spec = classifier_spec(args.model, args.activation, _given_options(args), splits)
        handle = cnn_handle(spec, mean=splits.mean, std=splits.std, classes=splits.classes,
                            seed=config.seed).to(device)
        found = lr_range_test(handle, splits, config, start_lr=args.start_lr, end_lr=args.end_lr,
                              steps=args.steps, progress=not args.quiet)
        path = charts.save(charts.lr_range(found.lrs, found.losses, found.smoothed, found.suggestion),
                           out / "lr-find", args.format)
        print(f"lowest smoothed loss at lr {found.best_lr:.3g}; suggested --lr {found.suggestion:.3g} "
              f"({config.optimizer}, batch {config.batch_size})")
        print(f"wrote {path}")
        return 0

    return run

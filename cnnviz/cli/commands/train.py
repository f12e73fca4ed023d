"""``cnnviz train`` and ``cnnviz lr-find``: train a small CNN, or find its learning rate first."""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path
from typing import Any

import torch

from cnnviz.cli.figures import add_chart_format
from cnnviz.cli.options import add_device, checked, output_dir
from cnnviz.cli.registry import Run, command
from cnnviz.interpret.inside import summary_lines
from cnnviz.interpret.views import charts, sheets
from cnnviz.zoo.checks import (
    ImageSide,
    NonNegativeFloat,
    NonNegativeInt,
    OpenUnitInterval,
    PositiveFloat,
    PositiveInt,
    UnitInterval,
)
from cnnviz.zoo.cnns import ACTIVATIONS, ARCHITECTURES, CnnSpec, cnn_handle
from cnnviz.zoo.datasets import DATASETS, Splits, load_dataset
from cnnviz.zoo.device import pick_device
from cnnviz.zoo.errors import CnnvizError, closest
from cnnviz.zoo.fashion_det import DET_TASK
from cnnviz.zoo.fashion_seg import SEG_TASK
from cnnviz.zoo.scene_training import SceneTask, train_scene_model
from cnnviz.zoo.training import (
    DEFAULT_LR,
    OPTIMIZERS,
    SCHEDULES,
    TrainConfig,
    TrainResult,
    load_checkpoint,
    log_run,
    lr_range_test,
    save_atomic,
    train,
)
from cnnviz.zoo.training_log import TrainingLog

# Settings of the network itself, as CLI flag -> CnnSpec option (tutorial_cnn only).
TUTORIAL_OPTIONS = {"channels": "channels", "dense": "dense", "convs": "convs_per_block",
                    "conv_dropout": "conv_dropout", "dense_dropout": "dense_dropout"}
DEFAULTS = TrainConfig()
# The shipped dense models, trained on Fashion-MNIST scenes by their own recipe.
SCENE_TASKS = {task.name: task for task in (SEG_TASK, DET_TASK)}
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


def _spec_from_args(args: argparse.Namespace, splits: Splits) -> CnnSpec:
    arch = args.model or "tutorial_cnn"
    if arch not in ARCHITECTURES:
        raise CnnvizError(f"unknown model {arch!r}{closest(arch, ARCHITECTURES)}: cnnviz trains "
                          f"{', '.join(ARCHITECTURES)}")
    options = {key: getattr(args, flag) for flag, key in TUTORIAL_OPTIONS.items() if getattr(args, flag) is not None}
    if options and arch != "tutorial_cnn":
        flags = ", ".join("--" + f.replace("_", "-") for f in TUTORIAL_OPTIONS if getattr(args, f) is not None)
        raise CnnvizError(f"{flags} shape the tutorial_cnn only, not {arch}: drop them or use --model tutorial_cnn")
    return CnnSpec(arch, activation=args.activation or "relu", in_channels=splits.channels,
                   num_classes=len(splits.classes), input_size=splits.input_size, options=options)


def _data_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {"source": args.data or "fashion-mnist", "data_dir": args.data_dir,
            "val_fraction": 0.1 if args.val_fraction is None else args.val_fraction,
            "image_size": args.image_size or 32}


def _load_splits(data: dict[str, Any], seed: int, progress: bool = True) -> Splits:
    return load_dataset(data["source"], val_fraction=data["val_fraction"], seed=seed, data_dir=data["data_dir"],
                        image_size=data["image_size"], progress=progress)


def _setup_threads(args: argparse.Namespace) -> None:
    if args.threads is not None:
        if args.threads < 1:
            raise CnnvizError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)


def _command_line(spec: CnnSpec, config: TrainConfig, data: dict[str, Any], out: Path, name: str) -> str:
    """The one command that reproduces this run, every setting spelled out."""
    parts = ["cnnviz", "train", "--model", spec.arch, "--activation", spec.activation, "--data", str(data["source"])]
    if data["data_dir"]:
        parts += ["--data-dir", str(data["data_dir"])]
    parts += ["--val-fraction", str(data["val_fraction"])]
    if str(data["source"]).lower() not in DATASETS:
        parts += ["--image-size", str(data["image_size"])]  # used when the folder holds images
    for flag, key in TUTORIAL_OPTIONS.items():
        if key in spec.options:
            value = spec.options[key]
            parts += [f"--{flag.replace('_', '-')}",
                      ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)]
    for key, value in config.as_dict().items():
        if isinstance(value, bool):
            if not value:
                parts.append(f"--no-{key}")
        else:
            parts += [f"--{key.replace('_', '-')}", str(value)]
    parts += ["--out", str(out), "--name", name]
    return " ".join(shlex.quote(p) for p in parts)


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
        started = time.perf_counter()
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
        checkpoint = out / f"{name}-checkpoint.pt"
        config, data, splits, spec = _run_settings(args, checkpoint)
        handle = cnn_handle(spec, mean=splits.mean, std=splits.std, classes=splits.classes, name=name,
                            seed=config.seed).to(device)
        command_line = _command_line(spec, config, data, out, name)
        _print_setup(command_line, splits, handle, device, checkpoint if args.resume else None, args.quiet)
        extra = {"spec": spec.as_dict(), "data": data}
        result = train(handle, splits, config, checkpoint=checkpoint, resume=args.resume, progress=not args.quiet,
                       extra=extra)
        log = _finish(handle, splits, config, spec, data, result, out, name, command_line, args)
        log.wall_seconds_this_call = round(time.perf_counter() - started, 1)
        log.write(out / f"{name}-log.json")
        if not args.keep_checkpoint:
            checkpoint.unlink(missing_ok=True)
        test = log.test
        print(f"{test.split} accuracy {100 * test.accuracy:.2f}% (loss {test.loss:.4f}) after "
              f"{len(result.history)} epochs; training took {log.train_seconds:.0f} s"
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
    score = {k: v for k, v in log["test"].items() if isinstance(v, float)}
    print(f"{task.name}: {', '.join(f'{k} {v:.3f}' for k, v in score.items())} on {log['recipe']['test_scenes']} "
          f"held-out scenes after {len(log['history'])} epochs; training took {log['seconds']:.0f} s")
    print(f"wrote {out / (task.name + '.pt')}, {out / (task.name + '-log.json')}")
    return 0


def _run_settings(args: argparse.Namespace, checkpoint: Path) -> tuple[TrainConfig, dict[str, Any], Splits, CnnSpec]:
    """The run's configuration, data settings, data and architecture: from the checkpoint with ``--resume``
    (flags given again must agree with it), else from the flags."""
    overrides = _config_overrides(args)
    if args.resume:
        state = load_checkpoint(checkpoint)
        config = TrainConfig.from_dict(state["config"])
        _check_same(overrides, config.as_dict(), checkpoint)
        extra = state["extra"]
        data, spec = extra["data"], CnnSpec.from_dict(extra["spec"])
        _check_same({k: v for k, v in _data_settings(args).items() if _given(args, k)}, data, checkpoint)
        splits = _load_splits(data, config.seed, progress=not args.quiet)
        _check_same(_given_spec(args, splits), spec.as_dict(), checkpoint)
        return config, data, splits, spec
    if checkpoint.exists():
        raise CnnvizError(f"{checkpoint} holds an unfinished run: add --resume to continue it, "
                          "or pick another --out or --name")
    config = TrainConfig(**overrides).validate()
    data = _data_settings(args)
    splits = _load_splits(data, config.seed, progress=not args.quiet)
    return config, data, splits, _spec_from_args(args, splits)


def _print_setup(command_line: str, splits: Splits, handle: Any, device: torch.device, resumed: Path | None,
                 quiet: bool) -> None:
    """The command that reproduces the run, the data, the layer table and the device."""
    print(command_line)
    print(f"{splits.name}: {len(splits.train):,} training / {len(splits.val):,} validation"
          f"{f' / {len(splits.test):,} test' if splits.test is not None else ''} images, "
          f"{splits.channels}x{splits.input_size}x{splits.input_size}; normalization from the training split: "
          f"mean {', '.join(f'{m:.4f}' for m in splits.mean)}, std {', '.join(f'{s:.4f}' for s in splits.std)}")
    if not quiet:
        print("\n".join(summary_lines(handle)))
    print(f"training on {device} ({torch.get_num_threads()} CPU threads)"
          + (f", resuming from {resumed}" if resumed else ""))


def _given(args: argparse.Namespace, key: str) -> bool:
    return {"source": args.data, "data_dir": args.data_dir, "val_fraction": args.val_fraction,
            "image_size": args.image_size}[key] is not None


def _given_spec(args: argparse.Namespace, splits: Splits) -> dict[str, Any]:
    given: dict[str, Any] = {}
    if args.model is not None:
        given["arch"] = args.model
    if args.activation is not None:
        given["activation"] = args.activation
    options = {key: getattr(args, flag) for flag, key in TUTORIAL_OPTIONS.items() if getattr(args, flag) is not None}
    if options:
        given["options"] = options
    return given


def _check_same(given: dict[str, Any], stored: dict[str, Any], checkpoint: Path) -> None:
    for key, value in given.items():
        if key == "options":
            for option, v in value.items():
                if stored["options"].get(option) != v:
                    raise CnnvizError(f"{checkpoint} was trained with {option}={stored['options'].get(option)}, "
                                      f"not {v}: resume with the same settings or start afresh")
        elif stored.get(key) != value:
            raise CnnvizError(f"{checkpoint} was trained with {key}={stored.get(key)}, not {value}: "
                              "resume with the same settings or start afresh")


def _finish(handle: Any, splits: Splits, config: TrainConfig, spec: CnnSpec, data: dict[str, Any],
            result: TrainResult, out: Path, name: str, command_line: str, args: argparse.Namespace) -> TrainingLog:
    """Log the run (one held-out evaluation and the diagnostics, in zoo), write the weights and charts."""
    log = log_run(handle, splits, config, spec, data, result, name=name, command=command_line)
    weights = {k: v.detach().contiguous().cpu() for k, v in handle.model.state_dict().items()}
    save_atomic(weights, out / f"{name}.pt")
    title = (f"{name}: {spec.arch} ({spec.activation}) on {splits.name}, {config.optimizer} lr {config.lr:g}, "
             f"{config.schedule}; {log.test.split} accuracy {100 * log.test.accuracy:.2f}%")
    for kind, fig in sheets.training_report(log, title).items():
        if kind == "curves" or args.diagnostics:
            charts.save(fig, out / f"{name}-{kind}", args.format)
    return log


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
        splits = _load_splits(_data_settings(args), config.seed, progress=not args.quiet)
        spec = _spec_from_args(args, splits)
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
